"""The console in Chromium (headless, Debian's ``chromium`` driven by Playwright), against
one real server with an API key: the key dialog, the reverb's controls, a live session
whose output level follows ``wet_level``, upload -> render -> progress -> download, a
chain's error on its field, deep links across reloads, and every view without a console
error, each saved as a screenshot (light, dark and phone width) for a person to look at.

The fake microphone plays a WAV file (Chromium's --use-file-for-fake-audio-capture), so
the live test hears known audio, and its levels are compared with pedalboard's reverb
on the same audio. Skipped, saying why, where Chromium or Playwright is missing
(``.ci/run`` installs Debian's chromium)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pedalboard
import pytest
import soundfile as sf
from restkit import REPO, start_server

CHROMIUM = os.environ.get("FXHOST_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (uv sync installs it)"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium; "
        "FXHOST_TEST_CHROMIUM names another)",
    ),
]

KEY = "console-browser-key"
#: Where the screenshots go: a folder of the repository that git ignores, printed at the end.
ARTIFACTS = Path(os.environ.get("FXHOST_TEST_ARTIFACTS", REPO / ".artifacts")) / "console"
RATE = 48000


def mic_signal() -> np.ndarray:
    """What the fake microphone plays, looped: steady noise, band-limited by a one-pole
    low-pass, about -20 dBFS RMS, the same in both channels; (channels, frames)."""
    rng = np.random.default_rng(15)
    noise = rng.standard_normal(RATE * 2).astype(np.float32)
    smooth = pedalboard.LowpassFilter(cutoff_frequency_hz=3000)(noise[None, :], RATE)[0]
    smooth *= 0.1 / np.sqrt(np.mean(smooth**2))
    return np.stack([smooth, smooth]).astype(np.float32)


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    sf.write(path, mic_signal().T, RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("console-browser"), {"FXHOST_API_KEYS": KEY})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(server):
    with server.client(headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


@pytest.fixture(scope="module")
def browser(mic_wav):
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic_wav}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield chromium
        chromium.close()


class Page:
    """A tab with the key in its session (as the key dialog leaves it), which records
    every console error and uncaught exception."""

    def __init__(self, browser, server, *, key: bool = True, **context):
        self.context = browser.new_context(base_url=server.base, **context)
        if key:
            self.context.add_init_script(f"sessionStorage.setItem('fxhost.key', {KEY!r})")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"{m.text} {m.location}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def __enter__(self):
        return self.page

    def __exit__(self, *exc):
        self.context.close()


@pytest.fixture
def tab(browser, server):
    with Page(browser, server) as page:
        yield page


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header stays on top of a full-page shot
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def test_the_console_asks_for_a_key_and_keeps_it_for_the_tab(browser, server):
    """No key: the first refused request opens the dialog; a wrong key is refused in
    words; the right one is kept in sessionStorage, so a reload needs no dialog."""
    with Page(browser, server, key=False) as page:
        page.goto("/effects")
        dialog = page.locator("#key-dialog")
        sync_api.expect(dialog).to_be_visible()
        page.fill("#key-input", "wrong")
        page.press("#key-input", "Enter")
        sync_api.expect(page.locator("#key-error")).to_contain_text("refused")
        page.fill("#key-input", KEY)
        page.press("#key-input", "Enter")
        sync_api.expect(dialog).to_be_hidden()
        sync_api.expect(page.locator("#effect-list article").first).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('fxhost.key')") == KEY
        page.reload()
        sync_api.expect(page.locator("#effect-list article").first).to_be_visible()
        assert not dialog.is_visible()


def test_the_effect_list_shows_every_effect(tab, api):
    effects = api.get("/api/effects").json()
    tab.goto("/effects")
    cards = tab.locator("#effect-list article")
    sync_api.expect(cards).to_have_count(len(effects))
    offline = [e["name"] for e in effects if e["offline_only"]]
    for name in offline:
        sync_api.expect(tab.locator("article", has=tab.locator(f"a[href='effects/{name}']"))).to_contain_text(
            "offline only"
        )
    tab.fill("#effect-filter", "reverb")
    sync_api.expect(cards).to_have_count(
        sum("reverb" in f"{e['name']} {e['summary']}".lower() for e in effects)
    )


def test_the_reverb_page_has_a_slider_per_parameter_with_the_schema_ranges(tab, api):
    """One slider per numeric parameter (the reverb has six, freeze_mode included), each
    with the schema's range and default, its value as a number, operable by keyboard;
    and the processed sound arrives from /api/process."""
    schema = api.get("/api/effects/reverb").json()["params_schema"]["properties"]
    tab.goto("/effects/reverb")
    sliders = tab.locator("input[type=range]")
    numeric = {n: p for n, p in schema.items() if p.get("type") == "number"}
    sync_api.expect(sliders).to_have_count(len(numeric))
    for name, prop in numeric.items():
        slider = tab.locator(f"input[type=range][data-param={name}]")
        assert float(slider.get_attribute("min")) == prop["minimum"]
        assert float(slider.get_attribute("max")) == prop["maximum"]
        assert float(tab.locator(f"input[type=number][data-param={name}]").input_value()) == prop["default"]
        # the slider and the number box share the label
        assert tab.get_by_label(name.replace("_", " ").capitalize(), exact=True).count() == 2
    wet = tab.locator("input[type=range][data-param=wet_level]")
    wet.focus()
    tab.keyboard.press("ArrowRight")
    assert (
        float(tab.locator("input[type=number][data-param=wet_level]").input_value())
        > schema["wet_level"]["default"]
    )
    sync_api.expect(tab.locator("#process-status")).to_have_attribute("data-ready", "true", timeout=20000)
    sync_api.expect(tab.locator("#process-status")).to_contain_text("Processed the example sound")
    tab.click("#ab-dry")
    sync_api.expect(tab.locator("#ab-dry")).to_have_attribute("aria-pressed", "true")
    tab.keyboard.press("b")
    sync_api.expect(tab.locator("#ab-wet")).to_have_attribute("aria-pressed", "true")
    room = tab.locator("input[type=number][data-param=room_size]")
    room.fill("2")
    room.press("Enter")  # the server's 422 names the query parameter: shown on its field
    sync_api.expect(tab.locator('[data-path="room_size"] .field-error')).to_have_text("Expected float <= 1.0")
    tab.select_option("#preset", "hall")
    hall = api.get("/api/effects/reverb").json()["presets"]["hall"]
    sync_api.expect(tab.locator("input[type=number][data-param=room_size]")).to_have_value(
        str(hall["room_size"])
    )


def test_controls_follow_the_schema_log_scales_choices_and_switches(tab, api):
    ladder = api.get("/api/effects/ladder_filter").json()["params_schema"]["properties"]
    tab.goto("/effects/ladder_filter")
    cutoff = tab.locator("input[type=range][data-param=cutoff_hz]")
    sync_api.expect(cutoff).to_have_attribute("data-scale", "log")
    sync_api.expect(tab.locator("label", has_text="Cutoff hz")).to_contain_text("Hz")
    options = tab.locator("select[data-param=mode] option").all_inner_texts()
    assert options == ladder["mode"]["enum"]
    # a log slider's middle is the geometric mean of its ends (2 Hz .. 20 kHz: 200 Hz)
    cutoff.evaluate("el => { el.value = 500; el.dispatchEvent(new Event('input')); }")
    assert float(tab.locator("input[type=number][data-param=cutoff_hz]").input_value()) == pytest.approx(
        200, rel=0.01
    )
    tab.goto("/effects/brickwall_limiter")
    switch = tab.locator("input[role=switch][data-param=true_peak]")
    sync_api.expect(switch).not_to_be_checked()
    switch.focus()
    tab.keyboard.press("Space")
    sync_api.expect(switch).to_be_checked()


def _level(page) -> float:
    return float(page.locator("#live-out-meter").get_attribute("data-db"))


def _steady_level(page, seconds: float = 1.0) -> float:
    """The output meter averaged over a second, after two seconds to settle (the reverb's
    tail and the meter's smoothing)."""
    page.wait_for_timeout(2000)
    readings = []
    for _ in range(5):
        readings.append(_level(page))
        page.wait_for_timeout(seconds * 1000 / 5)
    return float(np.mean(readings))


def _reverb_rms_db(wet_level: float) -> float:
    """pedalboard's reverb (the plugin's defaults but wet_level) on the looped mic signal:
    the RMS of the last loop, in dBFS."""
    signal = np.tile(mic_signal(), 4)
    reverb = pedalboard.Reverb(room_size=0.5, damping=0.5, wet_level=wet_level, dry_level=0.4, width=1.0)
    out = reverb(signal, RATE)[:, -RATE * 2 :]
    return 20 * np.log10(np.sqrt(np.mean(out**2)))


def test_moving_wet_level_in_a_live_session_changes_the_output_level(tab):
    """Fake microphone -> AudioWorklet -> /ws/process (the key as the auth message) ->
    playback. Moving wet_level sends `set`: the output level measured in the page follows,
    as pedalboard's reverb says it should, and the session's counters show."""
    tab.goto("/live?effect=reverb")
    tab.select_option("#live-source", "mic")
    tab.click("#live-start")
    sync_api.expect(tab.locator("#live-status")).to_contain_text("Live: reverb", timeout=15000)
    levels = {}
    for wet in (0.0, 1.0):
        box = tab.locator("#live-steps input[type=number][data-param=wet_level]")
        box.fill(str(wet))
        box.press("Enter")
        sync_api.expect(tab.locator("#live-status")).to_contain_text("Step 1 updated")
        levels[wet] = _steady_level(tab)
    expected = {wet: _reverb_rms_db(wet) for wet in levels}
    print(f"live output level in the page (dBFS) by wet_level: {levels}; pedalboard: {expected}")
    assert levels[1.0] - levels[0.0] > 3, levels
    for wet in levels:
        assert levels[wet] == pytest.approx(expected[wet], abs=2.0), (levels, expected)
    input_db = float(tab.locator("#live-in-meter").get_attribute("data-db"))
    assert input_db == pytest.approx(-20, abs=1.5)
    sync_api.expect(tab.locator("#live-rtt")).to_contain_text("ms")
    assert int(tab.locator("#live-blocks").inner_text()) > 100
    assert tab.locator("#live-late").inner_text().isdigit()
    assert tab.locator("#live-underruns").inner_text().isdigit()
    shoot(tab, "live")
    tab.click("#live-start")
    sync_api.expect(tab.locator("#live-status")).to_have_text("Stopped.")


def test_listening_to_a_shared_stream(tab, api):
    """A stream through `hall` fed over REST in real time: the page's listener (a
    WebSocket with the auth message, into the AudioWorklet) meters what pedalboard's
    reverb makes of that input."""
    stream = api.post("/api/streams", json={"chain": "hall", "sample_rate": RATE, "channels": 2}).json()
    tab.goto("/live")
    item = tab.locator("#stream-list li", has_text=stream["id"][:8])
    item.get_by_role("button", name="Listen").click()
    sync_api.expect(tab.locator("#stream-status")).to_contain_text("Listening")
    signal = np.tile(mic_signal(), 3)  # 6 s
    block = RATE // 10
    stop = threading.Event()

    def produce() -> None:
        start = time.monotonic()
        for n, at in enumerate(range(0, signal.shape[1], block)):
            if stop.is_set():
                return
            pcm = np.ascontiguousarray(signal[:, at : at + block].T).tobytes()
            api.post(f"/api/streams/{stream['id']}/input", content=pcm).raise_for_status()
            time.sleep(max(0.0, start + (n + 1) * block / RATE - time.monotonic()))

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        tab.wait_for_timeout(3000)
        readings = []
        for _ in range(5):
            readings.append(float(tab.locator("#stream-meter").get_attribute("data-db")))
            tab.wait_for_timeout(300)
    finally:
        stop.set()
        producer.join()
    hall = api.get("/api/chains/hall").json()["steps"][0]["params"]
    hall.pop("freeze_mode")
    out = pedalboard.Reverb(**hall)(signal, RATE)[:, RATE * 2 :]
    expected = 20 * np.log10(np.sqrt(np.mean(out**2)))
    assert np.mean(readings) == pytest.approx(expected, abs=2.0), (readings, expected)
    api.delete(f"/api/streams/{stream['id']}")


def _render_input(path: Path) -> np.ndarray:
    """20 s of a tone in bursts (a reverb's tail shows between them), float WAV."""
    t = np.arange(44100 * 20) / 44100
    audio = 0.2 * np.sin(2 * np.pi * 330 * t)
    audio[(t % 1.0) > 0.3] *= 0.1
    stereo = np.stack([audio, audio * 0.8]).astype(np.float32)
    sf.write(path, stereo.T, 44100, subtype="FLOAT")
    return stereo


def test_upload_render_progress_and_download(tab, api, tmp_path):
    """Drop a file on the assets page (progress, then its page: analysis and pictures),
    render it through `hall` with the progress of server-sent events (a signed link, as
    EventSource sends no header), and download the result (a signed link too): it is
    pedalboard's reverb of the upload."""
    source = tmp_path / "take.wav"
    audio = _render_input(source)
    tab.goto("/assets")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are words, not audio")
    tab.set_input_files("#upload-files", str(not_audio))
    sync_api.expect(tab.locator("#uploads li .error")).to_contain_text("Unsupported Media Type")
    tab.fill("#upload-folder", "console/takes")
    tab.set_input_files("#upload-files", str(source))
    stored = tab.locator("#uploads a.ok")
    sync_api.expect(stored).to_contain_text("stored", timeout=30000)
    assert tab.get_by_role("progressbar", name="Upload of take.wav").evaluate("el => el.value") == 1
    sync_api.expect(tab.locator("#asset-rows")).to_contain_text("console/")
    stored.click()
    sync_api.expect(tab.locator("h1")).to_have_text("console/takes/take.wav")
    sync_api.expect(tab.locator("#analysis")).to_contain_text("LUFS", timeout=20000)
    tab.wait_for_function("document.querySelector('#spectrogram')?.naturalWidth > 0", timeout=20000)
    tab.wait_for_function("document.querySelector('#waveform')?.naturalWidth > 0", timeout=20000)
    asset_id = tab.url.rsplit("/", 1)[1]
    shoot(tab, "asset")

    tab.click("text=Render through a chain…")
    sync_api.expect(tab.locator("#render-asset")).to_have_value(asset_id)
    tab.select_option("#render-chain", "hall")
    tab.select_option("#render-format", "wav")
    tab.click("#render-start")
    status = tab.locator("#render-status")
    sync_api.expect(status).to_have_attribute("data-status", "done", timeout=60000)
    sync_api.expect(status).to_contain_text("Done: console/takes/take-hall.wav")
    assert tab.locator("#render-progress").evaluate("el => el.value") == 1
    sync_api.expect(tab.locator("#render-cancel")).to_be_hidden()
    sync_api.expect(tab.locator("#render-history li", has_text="take.wav → hall")).to_contain_text("done")
    events = int(tab.locator("#render-progress").get_attribute("data-events"))
    assert events >= 1  # the end came as an event of the stream, not by asking again
    shoot(tab, "renders")
    link = tab.locator("#render-download")
    tab.wait_for_function("document.querySelector('#render-download')?.href.includes('sig=')")
    with tab.expect_download() as download:
        link.click()
    out_path = tmp_path / "downloaded.wav"
    download.value.save_as(out_path)
    out, rate = sf.read(out_path, dtype="float32", always_2d=True)
    hall = api.get("/api/chains/hall").json()["steps"][0]["params"]
    hall.pop("freeze_mode")
    expected = pedalboard.Reverb(**hall)(audio, 44100)
    assert rate == 44100 and out.shape[0] > audio.shape[1]  # the tail is kept
    np.testing.assert_allclose(out.T[:, : audio.shape[1]], expected, atol=2e-4)
    tab.goto(f"/assets/{asset_id}")
    tab.once("dialog", lambda dialog: dialog.accept())
    tab.get_by_role("button", name="Delete").click()
    tab.wait_for_url("**/assets?prefix=console%2Ftakes%2F")
    sync_api.expect(tab.locator("#asset-rows")).to_contain_text("take-hall.wav")  # the render stays
    sync_api.expect(tab.locator("#asset-rows")).not_to_contain_text("take.wav")
    assert api.get(f"/api/assets/{asset_id}").status_code == 404


def test_a_bad_chain_shows_the_error_on_its_field(tab, api):
    """A bypassed gain, then a reverb whose room size is out of range: the server's 422
    names steps[0] (the bypassed step is not sent), shown on the reverb's room size.
    Fixed, the chain saves, and a reload of its own URL shows it; plugins.toml's chains
    are read-only."""
    tab.goto("/chains")
    tab.fill("#chain-name", "console-bad")
    tab.select_option("#add-effect", "gain")
    tab.click("#add-step")
    tab.select_option("#add-effect", "reverb")
    tab.click("#add-step")
    tab.locator("#steps li").nth(0).get_by_label("Bypass").check()
    room = tab.locator("#steps li").nth(1).locator("input[type=number][data-param=room_size]")
    room.fill("2")
    room.press("Tab")
    tab.click("#save-chain")
    field = tab.locator('[data-path="steps[1].params.room_size"]')
    sync_api.expect(field.locator(".field-error")).to_have_text("Expected float <= 1.0")
    sync_api.expect(room).to_have_attribute("aria-invalid", "true")
    sync_api.expect(tab.locator("#chain-problems")).to_contain_text("one field needs fixing")
    assert api.get("/api/chains/console-bad").status_code == 404
    shoot(tab, "chains-error")
    room.fill("0.8")
    room.press("Tab")
    tab.click("#save-chain")
    tab.wait_for_url("**/chains/console-bad")
    saved = api.get("/api/chains/console-bad").json()
    assert [s["effect"] for s in saved["steps"]] == ["reverb"]
    assert saved["steps"][0]["params"]["room_size"] == 0.8
    tab.reload()
    sync_api.expect(tab.locator("#builder-title")).to_have_text("console-bad")
    # reorder: a delay added last, moved first; a step removed; saved with PUT
    tab.select_option("#add-effect", "delay")
    tab.click("#add-step")
    delay = tab.locator("#steps li").nth(1)
    delay.get_by_label("Load a preset").select_option("slapback")
    slapback = api.get("/api/effects/delay").json()["presets"]["slapback"]
    sync_api.expect(delay.locator("input[type=number][data-param=delay_seconds]")).to_have_value(
        str(slapback["delay_seconds"])
    )
    tab.select_option("#add-effect", "gain")
    tab.click("#add-step")
    tab.get_by_role("button", name="Move step 2 up").click()
    # the focus stays on the moved step: at the top, on its other move button
    sync_api.expect(tab.get_by_role("button", name="Move step 1 down")).to_be_focused()
    tab.get_by_role("button", name="Remove step 3").click()
    tab.click("#save-chain")
    sync_api.expect(tab.locator("#toast")).to_contain_text("Saved chain console-bad")
    steps = api.get("/api/chains/console-bad").json()["steps"]
    assert [s["effect"] for s in steps] == ["delay", "reverb"]
    assert steps[0]["params"]["delay_seconds"] == slapback["delay_seconds"]
    tab.once("dialog", lambda dialog: dialog.accept())
    tab.get_by_role("button", name="Delete").click()
    tab.wait_for_url("**/chains")
    assert api.get("/api/chains/console-bad").status_code == 404
    tab.goto("/chains/hall")
    sync_api.expect(tab.locator("#save-chain")).to_have_count(0)
    sync_api.expect(tab.locator("#steps input[data-param=room_size]").first).to_be_disabled()


def test_operators_see_plugins_health_and_load(tab, api):
    plugins = api.get("/api/plugins").json()
    tab.goto("/operators")
    rows = tab.locator("#plugin-rows tr")
    sync_api.expect(rows).to_have_count(len(plugins))
    for plugin in plugins:
        row = tab.locator("#plugin-rows tr", has_text=plugin["module"])
        sync_api.expect(row).to_contain_text(plugin["status"])
        seconds = plugin["load_seconds"]
        shown = float(row.locator("td").nth(4).inner_text().removesuffix(" ms"))
        assert shown == pytest.approx(seconds * 1000, abs=0.51), plugin
    sync_api.expect(tab.locator("#health-status")).to_have_text("ok")
    sync_api.expect(tab.locator("#load-queue")).to_have_text("0")
    # the load figures are rates between two scrapes of /metrics
    sync_api.expect(tab.locator("#load-realtime")).to_contain_text("real time", timeout=6000)


VIEWS = {
    "effects": "Effects",
    "effects/reverb": "reverb",
    "chains": "Chains",
    "chains/hall": "Chains",
    "assets": "Assets",
    "assets?prefix=console/": "Assets",
    "renders": "Renders",
    "live": "Live",
    "operators": "Operators",
    "keys": "API key",
}


def test_deep_links_survive_a_reload(tab):
    for path, heading in VIEWS.items():
        tab.goto(f"/{path}")
        sync_api.expect(tab.locator("main h1").first).to_have_text(heading)
        tab.reload()
        sync_api.expect(tab.locator("main h1").first).to_have_text(heading)
        assert tab.url == f"{tab.url.split('/', 3)[0]}//{tab.url.split('/')[2]}/{path}"
    tab.click("header nav >> text=Operators")  # in-page navigation keeps the URL honest too
    tab.wait_for_url("**/operators")
    tab.go_back()
    tab.wait_for_url("**/keys")


CONTRAST = """() => {
  // WCAG 2 contrast of each visible text's colour against its nearest opaque background
  const channel = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  const lum = (c) => {
    const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(channel);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      const a = c.match(/[\\d.]+/g);
      if (a && (a.length < 4 || Number(a[3]) > 0.9)) return c;
    }
    return getComputedStyle(document.documentElement).backgroundColor;
  };
  const bad = [];
  const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const el = walker.currentNode.parentElement;
    // disabled controls are exempt from WCAG's contrast rule
    if (!text || !el.checkVisibility() || el.closest('[disabled], .step.bypassed')) continue;
    const [l1, l2] = [lum(getComputedStyle(el).color), lum(bg(el))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    if (ratio < 4.5) bad.push(`${el.tagName} "${text.slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return bad;
}"""

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button, meter, progress')]
  .filter((el) => el.checkVisibility() || el.classList.contains('visually-hidden'))
  .filter((el) => !(el.labels && el.labels.length))
  .filter((el) => !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
  .filter((el) => !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 80))"""


@pytest.mark.parametrize(
    "scheme, viewport",
    [
        ("light", {"width": 1280, "height": 860}),
        ("dark", {"width": 1280, "height": 860}),
        ("light", {"width": 390, "height": 844}),
    ],
    ids=["light", "dark", "phone"],
)
def test_every_view_without_console_errors_labelled_and_readable(browser, server, scheme, viewport):
    """Each view in light and dark, and at a phone's width: no console error, every
    control labelled, text contrast at least 4.5:1 (WCAG AA); a screenshot of each is
    saved (ARTIFACTS) for a person to look at."""
    name = "phone" if viewport["width"] < 600 else scheme
    tab = Page(browser, server, color_scheme=scheme, viewport=viewport)
    with tab as page:
        for path in VIEWS:
            page.goto(f"/{path}")
            sync_api.expect(page.locator("main h1").first).to_be_visible()
            page.wait_for_load_state("networkidle")
            assert page.evaluate(UNLABELLED) == [], path
            assert page.evaluate(CONTRAST) == [], (path, scheme)
            shoot(page, f"{name}-{path.replace('/', '_').replace('?prefix=', '_in_').rstrip('_/')}")
            no_overflow = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            assert no_overflow, (path, "the page scrolls sideways")
        assert tab.errors == [], tab.errors
    print(f"console screenshots: {ARTIFACTS}")
