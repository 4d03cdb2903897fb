// The layer editor's "Add another key": a copy of the last new row, numbered as Django's formset expects.
(function () {
  "use strict";
  const button = document.getElementById("add-row");
  if (!button) return;
  button.addEventListener("click", () => {
    const total = document.querySelector("input[name=form-TOTAL_FORMS]");
    const rows = document.querySelectorAll("#layer-editor tr.new");
    const template = rows[rows.length - 1];
    if (!template) return;
    const index = Number(total.value);
    const row = template.cloneNode(true);
    row.querySelectorAll("input, textarea").forEach((field) => {
      field.name = field.name.replace(/form-\d+-/, `form-${index}-`);
      if (field.id) field.id = field.id.replace(/form-\d+-/, `form-${index}-`);
      if (field.type === "checkbox") field.checked = false; else if (field.type !== "hidden") field.value = "";
    });
    row.querySelectorAll(".errorlist").forEach((list) => list.remove());
    template.after(row);
    total.value = index + 1;
    row.querySelector("input[name$='-key']").focus();
  });
})();
