"""The API's documents in real Chromium: /api/v1/docs links each drop-in protocol's own document,
which renders its operations and what it does not support."""

import pytest

from tests.conftest import SCREENSHOTS

pytestmark = pytest.mark.django_db(transaction=True)


def test_docs_in_chromium__native_docs_link_the_vault_spring_and_ofrep_documents(server_processes, chromium):
    address, _ = server_processes()
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"http://{address}/api/v1/docs")
    page.wait_for_selector(".opblock-summary")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "api-docs.png")
    expected = {
        "Vault KV v2": ("/v1/layers/data/{path}", "other secrets engines"),
        "Spring Cloud Config": ("/spring/{application}-{profile}.{ext}", "several profiles at once"),
        "OpenFeature OFREP": ("/ofrep/v1/evaluate/flags/{key}", "event streams"),
    }
    for link, (operation, unsupported) in expected.items():
        page.goto(f"http://{address}/api/v1/docs")
        page.wait_for_selector(".opblock-summary")
        href = page.get_attribute(f".info a:text-is('{link}')", "href")  # Swagger UI opens it in a new tab
        page.goto(f"http://{address}{href}")
        page.wait_for_selector(".opblock-summary")
        assert operation in page.inner_text(".swagger-ui")
        assert unsupported in page.inner_text(".info")
        page.screenshot(path=SCREENSHOTS / f"api-docs-{page.url.rsplit('/', 1)[1]}.png", full_page=True)
