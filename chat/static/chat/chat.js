// The chat page speaks exactly the protocol of SPEC §5: fetch a ticket with the session,
// open ws/chat/<room>/?ticket=…, render history/config/message/error frames.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const reasons = {
    4401: "Your chat ticket was refused. Getting a new one…",
    4403: "You may not chat in this room.",
    4400: "That room name is not valid.",
    1009: "That message was too large; the connection was closed.",
    1013: "The chat is temporarily unavailable. Retrying…",
  };
  let socket = null, room = $("room").value, retries = 0, limit = 2000;

  function showError(text) { $("error").textContent = text; $("error").hidden = !text; }
  function setStatus(text) { $("status").textContent = text; }
  function enableSending(on) { $("text").disabled = !on; $("send").disabled = !on; }

  function render(message) {
    const item = document.createElement("li");
    const who = document.createElement("span");
    who.className = "user"; who.textContent = message.user;
    const text = document.createElement("span");
    text.className = "text"; text.textContent = message.text;
    const at = document.createElement("time");
    at.dateTime = message.at; at.textContent = new Date(message.at).toLocaleTimeString();
    item.append(who, text, at);
    $("messages").append(item);
    $("messages").scrollTop = $("messages").scrollHeight;
  }

  async function ticket() {
    const response = await fetch("/api/v1/chat/ticket", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: "{}",
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || "could not get a chat ticket");
    return body.ticket;
  }

  async function connect() {
    enableSending(false);
    setStatus("connecting…");
    let token;
    try { token = await ticket(); } catch (error) { showError(error.message); setStatus("offline"); return; }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/chat/${encodeURIComponent(room)}/?ticket=${encodeURIComponent(token)}`);
    const current = socket;
    let explained = false;  // the server's error frame says more than a close code
    socket.onopen = () => { setStatus(`#${room}`); };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "history") {
        $("messages").replaceChildren(); frame.messages.forEach(render); showError(""); retries = 0; enableSending(true);
      } else if (frame.type === "message") {
        render(frame);
      } else if (frame.type === "config") {  // at once, and live at every change of the user's configuration
        const values = frame.values;
        limit = values["chat.max_message_length"] || 2000;
        $("limits").textContent = `≤ ${limit} characters, ${values["chat.rate_limit_per_minute"]} messages/min`;
        const welcome = values["chat.welcome_message"];
        $("welcome").textContent = welcome || ""; $("welcome").hidden = !welcome;
        document.body.classList.toggle("dark", values["feature.dark_mode"] === true);
      } else if (frame.type === "error") {
        showError(frame.message); explained = true;
      }
    };
    socket.onclose = (event) => {
      if (current !== socket) return;  // a room switch replaced it
      enableSending(false);
      setStatus(`disconnected (${event.code})`);
      if (reasons[event.code] && !explained) showError(reasons[event.code]);
      const retry = event.code === 4401 || event.code === 1013 || event.code === 1006 || event.code === 1001;
      if (retry && retries < 5) { retries += 1; setTimeout(connect, 500 * 2 ** retries); }
    };
  }

  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    if (text.length > limit) {  // refused as the server would, instead of cut short without a word
      showError(`messages are at most ${limit} characters; this one has ${text.length}`); return;
    }
    showError("");
    socket.send(JSON.stringify({type: "message", text}));
    $("text").value = "";
  });
  $("room-form").addEventListener("submit", (event) => {
    event.preventDefault();
    room = $("room").value.trim();
    history.replaceState(null, "", `?room=${encodeURIComponent(room)}`);
    retries = 0;
    const old = socket; socket = null; if (old) old.close();
    connect();
  });
  connect();
})();
