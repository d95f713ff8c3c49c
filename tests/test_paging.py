"""The one OData paging path (cutover.paging) shared by DataverseClient and FnoClient: the same
same-service check on @odata.nextLink, the same endless-paging guard, the same query options.

Paging itself (every row once, nextLinks followed, page sizes) is tested against the simulator
in test_dataverse_client.py and test_fno_client.py. A service that sends a foreign or looping
nextLink is something the simulator will not impersonate (it is a faithful service), so those
tests serve pages from a small stand-in service (httpx.MockTransport) that answers every
request with the page it is asked for and records which hosts were asked.
"""

from __future__ import annotations

import httpx
import pytest

from cutover import paging
from cutover.dataverse import DataverseClient, DataverseResponseError
from cutover.fno import FnoClient, FnoResponseError
from cutover.tokens import StaticToken
from cutover.transport import Transport
from tests.conftest import DV, FNO, READER

DV_ROOT = "https://org.crm.dynamics.com/api/data/v9.2/"
FNO_ROOT = "https://org.operations.dynamics.com/data/"


class PagedService:
    """Answers GET <url> with pages[url without host] (an OData collection page); records every URL asked."""

    def __init__(self, pages: dict[str, dict]):
        self.pages = pages
        self.asked: list[httpx.URL] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request.url)
        page = self.pages.get(request.url.raw_path.decode())
        if page is None:
            return httpx.Response(
                404, json={"error": {"code": "0x80060888", "message": "Resource not found for the segment"}}
            )
        return httpx.Response(200, json=page)


def dataverse(service: PagedService, http: httpx.AsyncClient) -> DataverseClient:
    return DataverseClient(Transport(DV_ROOT, StaticToken("t"), environment="prod", read_only=True, client=http))


def fno(service: PagedService, http: httpx.AsyncClient) -> FnoClient:
    return FnoClient(Transport(FNO_ROOT, StaticToken("t"), environment="prod", read_only=True, client=http))


# --- the same-service check ---------------------------------------------------------------------


@pytest.mark.parametrize(("root", "error"), [(DV_ROOT, DataverseResponseError), (FNO_ROOT, FnoResponseError)])
def test_next_link_must_stay_below_the_service_root(root, error):
    """A nextLink is followed only below the transport's own root (same scheme, host, path),
    with relative links resolved against the page that carried them; the token is never sent
    to another host, another scheme, another path or out through dot segments."""
    t = Transport(root, StaticToken("t"), environment="prod", read_only=True)
    here = root + "accounts?$select=name"
    assert paging.next_url(t, here, root + "accounts?$skiptoken=x", error=error) == root + "accounts?$skiptoken=x"
    assert paging.next_url(t, here, "accounts?$skiptoken=y", error=error) == root + "accounts?$skiptoken=y"
    host = root.split("/")[2]
    assert (
        paging.next_url(t, here, root.replace(host, host.upper()) + "a", error=error)
        == root.replace(host, host.upper()) + "a"
    )
    bad = [
        f"https://evil.example/{root.split('/', 3)[3]}accounts?$skiptoken=x",
        root.replace("https://", "http://") + "accounts",
        f"https://{host}/other/accounts",
        f"//evil.example{root.split(host)[1]}accounts",
        root + "../../other/accounts",
        root + "%2e%2e/other",
    ]
    for link in bad:
        with pytest.raises(error, match="outside") as info:
            paging.next_url(t, here, link, error=error)
        assert info.value.exit_code == 3
    for unusable in (None, "", 42):
        with pytest.raises(error, match="unusable @odata.nextLink"):
            paging.next_url(t, here, unusable, error=error)


async def test_both_clients_refuse_a_foreign_next_link_and_never_send_the_token_there():
    """A service whose first page points its nextLink at another host: Dataverse and F&O
    clients alike yield the first page, then stop with an error naming the foreign host, and
    the foreign host is never asked."""
    service = PagedService(
        {
            "/api/data/v9.2/accounts": {
                "value": [{"n": 1}],
                "@odata.nextLink": "https://evil.example/api/data/v9.2/accounts?$skiptoken=2",
            },
            "/data/CustTransactions?cross-company=true": {
                "value": [{"n": 1}],
                "@odata.nextLink": "https://evil.example/data/CustTransactions?$skiptoken=2",
            },
        }
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(service)) as http:
        got = []
        with pytest.raises(DataverseResponseError, match=r"outside .* \(https://evil.example/api/data/v9.2/accounts\)"):
            async for page in dataverse(service, http).query("accounts"):
                got.append(page)
        with pytest.raises(FnoResponseError, match=r"outside .* \(https://evil.example/data/CustTransactions\)"):
            async for page in fno(service, http).pages("CustTransactions"):
                got.append(page)
    assert got == [[{"n": 1}], [{"n": 1}]]
    assert {u.host for u in service.asked} == {"org.crm.dynamics.com", "org.operations.dynamics.com"}


# --- the endless-paging guard -------------------------------------------------------------------


@pytest.mark.parametrize("cycle", ["self", "two pages"])
async def test_both_clients_stop_a_looping_next_link(cycle):
    """A service whose nextLinks loop (a page pointing at itself, or two pages pointing at each
    other) would page forever: both clients stop at the first link already followed."""

    def loop(root: str, entity: str, first: str) -> dict[str, dict]:
        a, b = f"{root}{entity}?$skiptoken=a", f"{root}{entity}?$skiptoken=b"
        if cycle == "self":
            return {
                first: {"value": [1], "@odata.nextLink": a},
                a.split(".com")[1]: {"value": [2], "@odata.nextLink": a},
            }
        return {
            first: {"value": [1], "@odata.nextLink": a},
            a.split(".com")[1]: {"value": [2], "@odata.nextLink": b},
            b.split(".com")[1]: {"value": [3], "@odata.nextLink": a},
        }

    service = PagedService(
        {
            **loop(DV_ROOT, "accounts", "/api/data/v9.2/accounts"),
            **loop(FNO_ROOT, "CustTransactions", "/data/CustTransactions?cross-company=true"),
        }
    )
    pages_per_read = 2 if cycle == "self" else 3
    async with httpx.AsyncClient(transport=httpx.MockTransport(service)) as http:
        with pytest.raises(DataverseResponseError, match="already followed; the read stopped to avoid an endless loop"):
            await dataverse(service, http).query_all("accounts")
        assert len(service.asked) == pages_per_read
        with pytest.raises(FnoResponseError, match="already followed; the read stopped to avoid an endless loop"):
            [p async for p in fno(service, http).pages("CustTransactions")]
        assert len(service.asked) == 2 * pages_per_read


async def test_an_answer_that_is_not_a_collection_stops_the_read():
    """200 with JSON that has no 'value' list is not a page: a clear error, not a KeyError."""
    service = PagedService(
        {"/api/data/v9.2/accounts": {"rows": []}, "/data/CustTransactions?cross-company=true": {"value": None}}
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(service)) as http:
        with pytest.raises(DataverseResponseError, match="not an OData collection"):
            await dataverse(service, http).query_all("accounts")
        with pytest.raises(FnoResponseError, match="not an OData collection"):
            [p async for p in fno(service, http).pages("CustTransactions")]


# --- query options ------------------------------------------------------------------------------


def test_query_options_are_checked_and_encoded_in_one_place():
    """Names through cutover.odata, values percent-encoded with OData punctuation readable;
    `top` a non-negative int; page sizes within the service's limit."""
    params = paging.query_options(
        select=["a", "b"], filter="name eq 'O''Brien & Co'", orderby="a desc", top=5, count=True
    )
    assert params == [
        ("$select", "a,b"),
        ("$filter", "name eq 'O''Brien & Co'"),
        ("$orderby", "a desc"),
        ("$top", "5"),
        ("$count", "true"),
    ]
    assert (
        paging.query_string(params)
        == "$select=a,b&$filter=name%20eq%20'O''Brien%20%26%20Co'&$orderby=a%20desc&$top=5&$count=true"
    )
    for bad in (-1, True, "5", 1.0):
        with pytest.raises(ValueError, match="top must be a non-negative integer"):
            paging.query_options(top=bad)
    with pytest.raises(ValueError, match="not an OData property name"):
        paging.query_options(select=["a or 1 eq 1"])
    assert paging.page_size_header(None, 5000, "Dataverse") is None
    assert paging.page_size_header(7, 5000, "Dataverse") == {"Prefer": "odata.maxpagesize=7"}
    for bad in (0, 5001, True):
        with pytest.raises(ValueError, match=r"between 1 and 5,000 \(Dataverse's page limit\)"):
            paging.page_size_header(bad, 5000, "Dataverse")


async def test_bad_options_are_refused_by_both_clients_before_sending(sim):
    """A page size over the service's limit, or a negative top, never reaches the service."""
    token = await sim.token(*READER)
    dv = DataverseClient(
        Transport(
            f"{sim.client.base_url}{DV}", StaticToken(token), environment="rehearsal", read_only=True, client=sim.client
        )
    )
    fo = FnoClient(
        Transport(
            f"{sim.client.base_url}{FNO}",
            StaticToken(token),
            environment="rehearsal",
            read_only=True,
            client=sim.client,
        )
    )
    with pytest.raises(ValueError, match="5,000"):
        await dv.query_all("accounts", page_size=5001)
    with pytest.raises(ValueError, match="non-negative"):
        await dv.query_all("accounts", top=-1)
    with pytest.raises(ValueError, match="10,000"):
        [p async for p in fo.pages("CustTransactions", page_size=10_001)]
    with pytest.raises(ValueError, match="non-negative"):
        [p async for p in fo.pages("CustTransactions", top=-1)]
    assert await sim.log() == []
    assert len(await dv.query_all("accounts", top=3, select=["accountid"])) == 3
    assert len([r async for r in fo.rows("CustTransactions", top=3, select=["RecId"])]) == 3
