"""The browser example (examples/web), run for real: models trained in SQL, exported with
``pyml.export`` and ``pyml.model_card``, served with the page from a local HTTP server, and
predicted by onnxruntime-web in headless Chromium from the page's form. The page must give what
``pyml.predict``, ``pyml.predict_label`` and ``pyml.predict_proba`` give for the same rows.

Chromium, its WebDriver and onnxruntime-web come from ``make web-setup`` (``make test`` runs it
first; here it is a no-op then). Selenium drives Debian's /usr/bin/chromium through
/usr/bin/chromedriver: nothing is downloaded at run time.

``PYML_WEB_SCREENSHOT=examples/web/screenshot.png`` saves the page (800x600) after the last
prediction of the multiclass test: the screenshot of the README.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "web"
PAGE = ("index.html", "app.js", "vendor")  # what a site copies from examples/web
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LOAD_TIMEOUT = 120  # seconds: compiling the 15 MB wasm runtime on a busy machine
REL = 1e-6  # the page against pyml.predict (a real: 7 digits)

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------
# The site, the browser and the page
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_setup() -> None:
    """``make web-setup`` (a no-op when ``make test`` ran it), then Chromium must be there."""
    made = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "web-setup"], capture_output=True, text=True
    )
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if made.returncode != 0 or missing:
        reason = (
            f"make web-setup failed (missing: {', '.join(missing) or 'nothing'}):\n"
            f"{made.stdout[-2000:]}\n{made.stderr[-2000:]}"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


class _Handler(SimpleHTTPRequestHandler):
    # The wasm runtime is imported as a module: browsers refuse a module of another type.
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Site(NamedTuple):
    root: Path
    url: str

    def publish(self, name: str, model: bytes | None, card: dict[str, Any] | None) -> str:
        """A folder with the page and the exported pair (either left out when None); its URL."""
        folder = self.root / name
        folder.mkdir()
        for item in PAGE:
            (folder / item).symlink_to(EXAMPLE / item)
        if model is not None:
            (folder / "model.onnx").write_bytes(model)
        if card is not None:
            (folder / "model.json").write_text(json.dumps(card, indent=2))
        return f"{self.url}/{name}/"


@pytest.fixture(scope="module")
def site(web_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A local HTTP server on 127.0.0.1 (a free port) in a thread of the test."""
    root = tmp_path_factory.mktemp("site")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser(web_setup: None) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--window-size=800,600",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # The page's viewport (what a screenshot shows) is 800x600 whatever the window's frame.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 800, "height": 600, "deviceScaleFactor": 1, "mobile": False},
    )
    yield driver
    driver.quit()


class Shown(NamedTuple):
    """What the page shows after a prediction."""

    prediction: str
    probabilities: list[tuple[str, float]]  # (class as shown, probability), in the card's order


def _console(browser: Any) -> str:
    return "\n".join(str(entry) for entry in browser.get_log("browser"))


def open_page(browser: Any, url: str) -> tuple[str, str]:
    """Load the page; wait until the model is loaded or refused: (state, status text)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    try:
        state = WebDriverWait(browser, LOAD_TIMEOUT).until(
            lambda b: b.execute_script("return document.body.dataset.state") or None
        )
    except TimeoutException:
        pytest.fail(f"the page did not load its model:\n{_console(browser)}")
    return str(state), str(browser.find_element(By.ID, "status").text)


def predict(browser: Any, values: Sequence[str | None]) -> Shown:
    """Fill the form's fields in order (None: left empty, NULL), press Predict, read the result."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fields = browser.find_elements(By.CSS_SELECTOR, "#form input")
    assert len(fields) == len(values)
    for field, value in zip(fields, values, strict=True):
        field.clear()
        if value is not None:
            field.send_keys(value)
    count = browser.execute_script(
        "return Number(document.getElementById('result').dataset.count || 0)"
    )
    browser.find_element(By.CSS_SELECTOR, "#form button").click()
    try:
        WebDriverWait(browser, 30).until(
            lambda b: (
                b.execute_script(
                    "return Number(document.getElementById('result').dataset.count || 0)"
                )
                > count
                or b.execute_script("return document.body.dataset.state") == "error"
            )
        )
    except TimeoutException:
        pytest.fail(f"no prediction:\n{_console(browser)}")
    status = browser.find_element(By.ID, "status")
    assert browser.execute_script("return document.body.dataset.state") == "ready", status.text
    table = browser.find_element(By.ID, "probabilities")
    probabilities = []
    if table.is_displayed():
        for row in table.find_elements(By.TAG_NAME, "tr"):
            name = row.find_element(By.TAG_NAME, "th").text
            value = row.find_element(By.CSS_SELECTOR, "td.value").text
            probabilities.append((name, float(value)))
    return Shown(browser.find_element(By.ID, "prediction").text, probabilities)


# ---------------------------------------------------------------------------
# Models trained and exported in SQL; what SQL predicts for the same rows
# ---------------------------------------------------------------------------


class Case(NamedTuple):
    project: str
    table: str
    features: list[str]
    model: bytes  # pyml.export
    card: dict[str, Any]  # pyml.model_card


def train_and_export(
    conn: psycopg.Connection,
    project: str,
    table: str,
    label: str,
    task: str,
    algorithm: str,
    hyperparams: dict[str, Any],
    preprocess: dict[str, Any] | None = None,
) -> Case:
    """Train on the table's columns but ``id`` (a view), export the live model and its card."""
    columns = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attname <> 'id' ORDER BY attnum",
        (table,),
    ).fetchall()
    view = f"{table}_training"
    conn.execute(
        sql.SQL("CREATE VIEW {} AS SELECT {} FROM {} ORDER BY id").format(
            sql.Identifier(view),
            sql.SQL(", ").join(sql.Identifier(name) for (name,) in columns),
            sql.Identifier(table),
        )
    )
    conn.execute(
        "SELECT * FROM pyml.train(%s, %s, %s, %s, %s, %s::jsonb, preprocess => %s::jsonb)",
        (
            project,
            task,
            view,
            label,
            algorithm,
            json.dumps(hyperparams),
            json.dumps(preprocess or {}),
        ),
    )
    (model,) = conn.execute("SELECT pyml.export(%s)", (project,)).fetchone()
    (card,) = conn.execute("SELECT pyml.model_card(%s)", (project,)).fetchone()
    features = [name for (name,) in columns if name != label]
    # The card's inputs are the graph's, in training order (the form's fields follow them);
    # skl2onnx writes a column name that is not an identifier with "_" in place of the rest.
    names = [i["name"] for i in card["inputs"]]
    assert len(names) == len(features)
    assert all(n == f for n, f in zip(names, features, strict=True) if f.isidentifier())
    return Case(project, table, features, bytes(model), card)


def rows(conn: psycopg.Connection, case: Case, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """The feature values of the table's rows ``ids``, in that order."""
    query = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, case.features)), sql.Identifier(case.table)
    )
    return [conn.execute(query, (i,)).fetchone() for i in ids]


def expected(conn: psycopg.Connection, case: Case, ids: Sequence[int], function: str) -> list[Any]:
    """``pyml.<function>(project, ROW(features...))`` of the table's rows ``ids``."""
    query = sql.SQL("SELECT pyml.{}(%s::text, ROW({})) FROM {} WHERE id = %s").format(
        sql.Identifier(function),
        sql.SQL(", ").join(map(sql.Identifier, case.features)),
        sql.Identifier(case.table),
    )
    return [conn.execute(query, (case.project, i)).fetchone()[0] for i in ids]


def typed(value: Any) -> str | None:
    """A value as a person types it in the form: NULL is an empty field."""
    if value is None:
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value)


def close(page: float, database: float) -> bool:
    return math.isclose(page, database, rel_tol=REL, abs_tol=1e-9)


# ---------------------------------------------------------------------------
# Regression with preprocessing: a text column (NULLs, an unseen category), a NULL number imputed
# ---------------------------------------------------------------------------

N = 300


@pytest.fixture(scope="module")
def houses(conn: psycopg.Connection) -> Case:
    rng = np.random.default_rng(16)
    city = rng.choice(["paris", "lyon", "nice", "lille"], N).astype(object)
    city[rng.random(N) < 0.08] = None
    size = rng.lognormal(4, 0.5, N).round(2)
    rooms = np.clip((size / 25 + rng.normal(0, 0.7, N)).round(), 1, 8).astype(int)
    effect = {"paris": 3.0, "lyon": 1.5, "nice": 1.8, "lille": 0.8, None: 1.0}
    price = np.array([effect[c] for c in city]) * size * 3 + 10 * rooms + rng.normal(0, 20, N)
    observed = size.astype(object)
    observed[rng.random(N) < 0.1] = None
    conn.execute(
        "CREATE TABLE web_houses (id int PRIMARY KEY, city text, size float8, rooms int,"
        " price float8)"
    )
    with conn.cursor().copy("COPY web_houses FROM STDIN") as copy:
        for i in range(N):
            copy.write_row((i + 1, city[i], observed[i], int(rooms[i]), float(price[i])))
    # Rows the test predicts: a NULL size, a NULL city, a city never seen in training.
    conn.execute("UPDATE web_houses SET city = 'lyon', size = NULL WHERE id = 291")
    conn.execute("UPDATE web_houses SET city = NULL, size = 61.25 WHERE id = 292")
    conn.execute("UPDATE web_houses SET city = 'marseille' WHERE id = 293")
    return train_and_export(
        conn,
        "houses",
        "web_houses",
        "price",
        "regression",
        "random_forest",
        {"n_estimators": 10},
        {"city": {"encode": "one_hot"}, "size": {"impute": "mean", "scale": "standard"}},
    )


def test_regression_with_preprocessing(
    conn: psycopg.Connection, site: Site, browser: Any, houses: Case
) -> None:
    assert houses.card["task"] == "regression"
    assert {i["name"]: i["type"] for i in houses.card["inputs"]}["city"] == "string"
    ids = [291, 292, 293, 294, 295, 296]
    values = rows(conn, houses, ids)
    assert values[0][:2] == ("lyon", None) and values[1][0] is None and values[2][0] == "marseille"
    want = expected(conn, houses, ids, "predict")
    state, status = open_page(browser, site.publish("houses", houses.model, houses.card))
    assert state == "ready", status
    assert "sha256 verified" in status
    for row, value in zip(values, want, strict=True):
        shown = predict(browser, [typed(v) for v in row])
        assert close(float(shown.prediction), value), (row, shown, value)
        assert shown.probabilities == []


# ---------------------------------------------------------------------------
# Classification: text classes (multiclass), boolean classes (binary)
# ---------------------------------------------------------------------------


def check_classification(
    conn: psycopg.Connection, browser: Any, case: Case, ids: list[int]
) -> None:
    classes = case.card["classes"]
    labels = expected(conn, case, ids, "predict_label")
    probabilities = expected(conn, case, ids, "predict_proba")
    numbers = None
    if not any(isinstance(c, str) for c in classes):  # pyml.predict gives the class itself
        numbers = expected(conn, case, ids, "predict")
    for k, row in enumerate(rows(conn, case, ids)):
        shown = predict(browser, [typed(v) for v in row])
        assert shown.prediction == labels[k], (row, shown)
        assert [name for name, _ in shown.probabilities] == [
            str(c).lower() if isinstance(c, bool) else str(c) for c in classes
        ]
        for (_, page), database in zip(shown.probabilities, probabilities[k], strict=True):
            assert close(page, database), (row, shown, probabilities[k])
        if numbers is not None:  # the class shown is the class pyml.predict gives (true = 1)
            index = [name for name, _ in shown.probabilities].index(shown.prediction)
            assert float(classes[index]) == numbers[k]


@pytest.fixture(scope="module")
def iris(conn: psycopg.Connection) -> Case:
    """Text classes; float8 features with the digits a person types (iris is stored as real)."""
    conn.execute(
        "CREATE TABLE web_iris AS SELECT row_number() OVER () ::int AS id,"
        " sepal_length::numeric::float8 AS sepal_length, sepal_width::numeric::float8 AS"
        " sepal_width, petal_length::numeric::float8 AS petal_length,"
        " petal_width::numeric::float8 AS petal_width,"
        " (ARRAY['setosa', 'versicolor', 'virginica'])[target + 1] AS species"
        " FROM pyml.iris"
    )
    return train_and_export(
        conn,
        "iris",
        "web_iris",
        "species",
        "classification",
        "random_forest",
        {"n_estimators": 10},
    )


def test_multiclass_text_classes(
    conn: psycopg.Connection, site: Site, browser: Any, iris: Case
) -> None:
    assert iris.card["task"] == "classification"
    assert sorted(iris.card["classes"]) == ["setosa", "versicolor", "virginica"]
    state, status = open_page(browser, site.publish("iris", iris.model, iris.card))
    assert state == "ready", status
    check_classification(conn, browser, iris, [1, 51, 71, 84, 107, 120, 134, 150])
    screenshot = os.environ.get("PYML_WEB_SCREENSHOT")
    if screenshot:
        predict(browser, ["6.0", "2.7", "5.0", "1.6"])  # a versicolor that could be a virginica
        browser.save_screenshot(str(ROOT / screenshot))


@pytest.fixture(scope="module")
def cancer(conn: psycopg.Connection) -> Case:
    """Boolean classes (pyml.predict gives 0 or 1), names with spaces, scaled features."""
    names = ["mean radius", "mean texture", "mean smoothness", "worst concave points"]
    columns = sql.SQL(", ").join(
        sql.SQL("{}::numeric::float8 AS {}").format(sql.Identifier(n), sql.Identifier(n))
        for n in names
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE web_cancer AS SELECT row_number() OVER () ::int AS id, {}, malignant"
            " FROM pyml.breast_cancer"
        ).format(columns)
    )
    return train_and_export(
        conn,
        "breast_cancer",
        "web_cancer",
        "malignant",
        "classification",
        "linear",
        {"max_iter": 1000},
        {n: {"scale": "standard"} for n in names},
    )


def test_binary_boolean_classes(
    conn: psycopg.Connection, site: Site, browser: Any, cancer: Case
) -> None:
    assert cancer.card["classes"] == [False, True]
    state, status = open_page(browser, site.publish("cancer", cancer.model, cancer.card))
    assert state == "ready", status
    check_classification(conn, browser, cancer, [1, 20, 21, 100, 300, 569])


# ---------------------------------------------------------------------------
# A page that cannot trust its files says so, and shows no form
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no card", "model.json is missing next to this page (HTTP 404)"),
        ("no model", "model.onnx is missing next to this page (HTTP 404)"),
        ("changed model", "model.onnx does not match model.json: its sha256 is"),
        ("other card", "model.onnx does not match model.json: its sha256 is"),
        ("not a card", "model.json is not a pyml model card"),
    ],
)
def test_untrusted_files_are_refused(
    site: Site, browser: Any, houses: Case, iris: Case, case: str, message: str
) -> None:
    from selenium.webdriver.common.by import By

    model: bytes | None = houses.model
    card: dict[str, Any] | None = houses.card
    if case == "no card":
        card = None
    elif case == "no model":
        model = None
    elif case == "changed model":
        model = houses.model[:-1] + bytes([houses.model[-1] ^ 1])  # one bit
    elif case == "other card":
        card = iris.card
    else:
        card = {"model": "something else"}
    state, status = open_page(browser, site.publish(case.replace(" ", "_"), model, card))
    assert state == "error"
    assert status.startswith(f"Cannot load the model: {message}"), status
    assert not browser.find_element(By.ID, "form").is_displayed()
