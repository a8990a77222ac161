"""The listening-test page in a real headless Chromium, opened from disk (file://) as people will open it.

Needs Debian's chromium and chromium-driver and the selenium package: the browser tests fail in CI (env
CI set) when they are missing, and are skipped elsewhere.
"""
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioprobe.io.atomic import read_csv
from audioprobe.metamers import listening

WORDS = ["yes", "no", "up", "down", "left", "right"]
CHROMIUM = os.environ.get("AUDIOPROBE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AUDIOPROBE_CHROMEDRIVER", "/usr/bin/chromedriver")
PARTICIPANT = 2
TRIALS = 5          # 4 targets + 1 catch trial


def _unavailable(message):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def package(tmp_path):
    rows = []
    t = np.arange(int(0.25 * 16000)) / 16000
    for index in range(4):
        for number, (model, layer) in enumerate([("natural", "natural"), ("kell", "conv1"), ("kell", "conv2")]):
            path = tmp_path / "wav" / f"{index}_{model}_{layer}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, 0.2 * np.sin(2 * np.pi * (300 + 40 * index + 5 * number) * t), 16000)
            rows.append({"clip_id": f"c{index}", "word": WORDS[index], "model": model, "layer": layer,
                         "path": str(path), "passed": True})
    listening.build_package(pd.DataFrame(rows), tmp_path / "pkg", participants=3, catch_trials=1, seed=5,
                            words=WORDS, title="Word test")
    return tmp_path / "pkg"


@pytest.fixture
def browser(tmp_path):
    """(driver, download folder): headless Chromium as root, on a fresh profile, downloads allowed."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install selenium)")
    for program in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            _unavailable(f"{program} is missing: apt-get install chromium chromium-driver")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        yield driver, downloads
    finally:
        driver.quit()


def wait_for(condition, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_participant_goes_through_every_trial_and_downloads_the_answers(package, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, downloads = browser
    key = read_csv(package / "trials.csv")
    mine = key[key.participant == PARTICIPANT].sort_values("trial")
    assert len(mine) == TRIALS
    element = lambda id_: driver.find_element(By.ID, id_)  # noqa: E731
    state = lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")  # noqa: E731

    driver.get(package.joinpath("index.html").as_uri())
    assert driver.title == "Word test"
    assert state() == "start"
    assert driver.find_element(By.CSS_SELECTOR, "label[for=participant]").text == "Participant number"
    element("participant").send_keys(str(PARTICIPANT), Keys.ENTER)
    assert state() == "trial"

    expected = []
    for number, row in enumerate(mine.itertuples(), start=1):
        assert element("trial-heading").text == f"Sound {number} of {TRIALS}"
        assert element("play").is_enabled()
        if number == 1:
            element("next").click()  # an answer before the sound is refused
            assert element("answer-error").text == "Play the sound first."
            # keyboard: the Play button has the focus at the start of a trial; Space presses it
            assert driver.switch_to.active_element == element("play")
            driver.switch_to.active_element.send_keys(Keys.SPACE)
        else:
            element("play").click()
        assert not element("play").is_enabled(), "the clip plays once: Play is disabled"
        wait_for(lambda: element("play-status").text.startswith("Played"), what="the clip to play to its end")
        element("play").click()  # disabled: nothing happens
        assert element("play-status").text.startswith("Played")

        answer = row.word
        if number == 1:    # typed in another case with spaces, submitted with Enter from the field
            element("answer").send_keys(f"  {row.word.upper()} ", Keys.ENTER)
        elif number == 2:  # chosen with a word button
            driver.find_element(By.XPATH, f"//div[@id='word-buttons']/button[text()='{row.word}']").click()
            element("next").click()
        elif number == 3:  # an unknown word is refused, then corrected
            element("answer").send_keys("banana", Keys.ENTER)
            assert "not one of the words" in element("answer-error").text
            assert element("trial-heading").text == f"Sound {number} of {TRIALS}"
            element("answer").clear()
            element("answer").send_keys(row.word)
            element("next").click()
        elif number == 4:  # no answer: Next twice goes on without one
            answer = ""
            element("next").click()
            assert "not typed a word" in element("answer-error").text
            element("next").click()
        else:              # a wrong (but known) word
            answer = next(w for w in WORDS if w != row.word)
            element("answer").send_keys(answer)
            element("next").click()
        expected.append({"participant": PARTICIPANT, "trial": row.trial, "stimulus": row.stimulus,
                         "answer": answer, "played": True})

    assert state() == "done"
    element("download").click()
    target = downloads / f"responses_participant_{PARTICIPANT}.csv"
    wait_for(lambda: target.exists() and not list(downloads.glob("*.crdownload")), what=f"{target.name}")
    assert "Saved as" in element("download-status").text

    text = target.read_text()
    assert text.splitlines()[0] == "participant,trial,stimulus,answer,response_time_ms,played"
    answers = pd.read_csv(target, keep_default_na=False)
    assert len(answers) == TRIALS
    got = answers.drop(columns=["response_time_ms"]).to_dict("records")
    assert got == expected
    assert (answers["response_time_ms"] > 0).all()
    assert (answers["response_time_ms"] < 60_000).all()


def test_an_unknown_participant_number_is_refused(package, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, _ = browser
    driver.get(package.joinpath("index.html").as_uri())
    field = driver.find_element(By.ID, "participant")
    field.send_keys("9", Keys.ENTER)
    assert "from 1 to 3" in driver.find_element(By.ID, "start-error").text
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "start"
    field.clear()
    field.send_keys("3")
    driver.find_element(By.ID, "start-button").click()
    assert driver.find_element(By.ID, "trial-heading").text == f"Sound 1 of {TRIALS}"


def test_the_page_needs_nothing_from_the_network(package):
    html = (package / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert "/*__LISTENING_TEST_DATA__*/" not in html
    # every stimulus the page names is in the package
    for name in set(re.findall(r"stim_\d+\.wav", html)):
        assert (package / "audio" / name).is_file()


def test_the_bare_template_says_it_has_no_trials(tmp_path, browser):
    from selenium.webdriver.common.by import By

    driver, _ = browser
    template = Path(listening.__file__).with_name(listening.TEMPLATE)
    page = tmp_path / "template.html"
    shutil.copyfile(template, page)
    driver.get(page.as_uri())
    assert driver.find_element(By.ID, "no-data").is_displayed()
    assert not driver.find_element(By.ID, "start").is_displayed()
