"""The audio browsers as a person sees them: notebooks 04 and 06 of a real run, served live by
Voilà on 127.0.0.1 and driven by headless Chromium (selenium). Skipped where Chromium is missing;
`.ci/run` installs it."""

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import papermill as pm
import pytest
import soundfile as sf
from conftest import REPO

from helpers import notebooks
from helpers.core.config import CLIP_SAMPLES, SAMPLE_RATE

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.notebooks,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="needs Debian's chromium + chromium-driver (.ci/run installs them)"),
]
selenium = pytest.importorskip("selenium", reason="needs selenium (requirements-dev.txt)")
pytest.importorskip("voila", reason="needs voila (requirements-dev.txt)")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CLIP_SECONDS = CLIP_SAMPLES / SAMPLE_RATE
# Seconds each <audio> of a container reports, once its metadata has loaded (None: not yet).
DURATIONS_JS = """
const audios = [...arguments[0].querySelectorAll('audio')].filter(a => a.offsetParent);
return audios.every(a => a.readyState >= 1) ? audios.map(a => a.duration) : null;
"""
# Play every visible <audio> of a container to its end; resolve with [duration, seconds taken].
PLAY_JS = """
const done = arguments[arguments.length - 1];
const audios = [...arguments[0].querySelectorAll('audio')].filter(a => a.offsetParent);
Promise.all(audios.map(a => new Promise((resolve, reject) => {
  const start = performance.now();
  a.onended = () => resolve([a.duration, (performance.now() - start) / 1000]);
  a.onerror = () => reject(String(a.error && a.error.message));
  a.currentTime = 0;
  a.play().catch(reject);
}))).then(done, err => done('error: ' + err));
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def voila(notebook_run, tmp_path_factory):
    """Voilà serving notebooks 04 and 06 with this run's parameters injected (papermill)."""
    run, data = notebook_run
    pages = tmp_path_factory.mktemp("pages")
    params = {"source": "demo", "run_dir": str(run), "mount_drive": False, "device": "cpu"}
    for name in ("04_generate_mixes", "06_analysis"):
        pm.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(pages / f"{name}.ipynb"),
                            parameters=params, prepare_only=True)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "voila", str(pages), "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1", "--ServerApp.token=", "--NotebookClient.timeout=600",
         f"--NotebookClient.iopub_timeout={notebooks.IOPUB_SECONDS}",
         f"--NotebookClient.startup_timeout={notebooks.STARTUP_SECONDS}"],
        cwd=pages, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(base, timeout=2)
                break
            time.sleep(0.5)
        yield base, data
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def chrome():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--autoplay-policy=no-user-gesture-required",
                 "--window-size=1400,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield driver
    driver.quit()


def _open(chrome, url: str, selector: str, count: int):
    """Load a Voilà page and wait until `count` widgets matching `selector` have rendered."""
    chrome.get(url)
    WebDriverWait(chrome, 600, poll_frequency=1).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, selector)) >= count)
    return chrome.find_elements(By.CSS_SELECTOR, selector)


def _durations(chrome, container) -> list[float]:
    return WebDriverWait(chrome, 60).until(
        lambda d: d.execute_script(DURATIONS_JS, container))


def _heading(container) -> str:
    return container.find_element(By.CSS_SELECTOR, ".widget-html").text


def test_prediction_browsers_show_their_filters_and_play_each_item(voila, chrome):
    base, data = voila
    browsers = _open(chrome, f"{base}/voila/render/06_analysis.ipynb", ".prediction-browser", 3)
    selects = [Select(s) for s in chrome.find_elements(By.CSS_SELECTOR,
                                                       ".prediction-browser select")]
    assert len(selects) == 6
    assert [s.first_selected_option.text for s in selects] == ["any"] * 6, "a blank dropdown"

    clips, mixes, excerpts = browsers
    for browser in (clips, mixes):
        assert _durations(chrome, browser) == [pytest.approx(CLIP_SECONDS, abs=0.01)]
    heading = _heading(excerpts)
    item = heading.split(" (", 1)[0]
    assert _durations(chrome, excerpts) == [pytest.approx(sf.info(data / item).duration, abs=0.01)]

    before_heading = _heading(clips)
    before_src = clips.find_element(By.TAG_NAME, "audio").get_attribute("src")
    Select(clips.find_element(By.CSS_SELECTOR, "select")).select_by_visible_text("violin")
    WebDriverWait(chrome, 30).until(lambda d: _heading(clips) != before_heading)
    after = _heading(clips)
    assert "match)" in after and "playing: violin" in after
    WebDriverWait(chrome, 30).until(
        lambda d: clips.find_element(By.TAG_NAME, "audio").get_attribute("src") != before_src)
    assert _durations(chrome, clips) == [pytest.approx(CLIP_SECONDS, abs=0.01)]


def test_mix_player_plays_the_mix_and_its_sources_for_their_length(voila, chrome):
    base, _ = voila
    (player,) = _open(chrome, f"{base}/voila/render/04_generate_mixes.ipynb", ".mix-player", 1)
    assert Select(player.find_element(By.CSS_SELECTOR, "select")).first_selected_option.text
    assert _durations(chrome, player) == [pytest.approx(CLIP_SECONDS, abs=0.01)] * 3  # mix + 2
    chrome.set_script_timeout(60)
    played = chrome.execute_async_script(PLAY_JS, player)
    assert not isinstance(played, str), played
    for duration, seconds in played:
        assert duration == pytest.approx(CLIP_SECONDS, abs=0.01)
        assert seconds == pytest.approx(duration, abs=0.75), "stopped early or stalled"
