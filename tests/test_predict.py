"""`helpers.evaluate.predict` on real audio files and real (untrained) checkpoints."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BAD_KINDS, REPO, bad_audio_files, write_wav

from helpers import cli
from helpers.core.config import CLASSES, CLIP_SAMPLES
from helpers.data.audio import peak_normalise, read_audio
from helpers.evaluate import predict
from helpers.models import checkpoints, networks


def _starts(n: int, length: int, hop: int, block: int) -> list[int]:
    """Where the windows of an `n`-sample ramp fed in `block`-sample blocks start."""
    ramp = torch.arange(float(n)).expand(2, -1)
    blocks = [ramp[:, i:i + block] for i in range(0, n, block)]
    windows = list(predict.stream_windows(blocks, length, hop))
    assert all(start == int(w[0, 0]) for start, w in windows), "each window says where it starts"
    return [start for start, _ in windows]


@pytest.mark.parametrize("block", [1, 333, 4000, 100_000])
def test_windows_cover_the_whole_recording_whatever_the_blocks(block):
    assert _starts(4000, 4000, 1000, block) == [0]
    assert _starts(10_500, 4000, 1000, block) == [0, 1000, 2000, 3000, 4000, 5000, 6000,
                                                  6500], "the last ends at the end"
    assert _starts(9000, 4000, 2500, block) == [0, 2500, 5000]
    ramp = torch.arange(10_500.0).expand(2, -1)
    last = list(predict.stream_windows([ramp[:, i:i + block] for i in range(0, 10_500, block)],
                                       4000, 1000))[-1][1]
    assert torch.equal(last, ramp[:, -4000:])


def test_a_short_recording_is_one_padded_window():
    ((start, short),) = predict.stream_windows([torch.ones(2, 300), torch.ones(2, 200)], 4000,
                                               1000)
    assert start == 0
    assert short.shape == (2, 4000) and short[:, :500].eq(1).all() and short[:, 500:].eq(0).all()
    assert list(predict.stream_windows([], 4000, 1000)) == []


def test_present_rules():
    probs = torch.tensor([[0.6, 0.35, 0.04, 0.01], [0.2, 0.2, 0.3, 0.3]])
    assert predict.present(probs, "single").tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert torch.allclose(predict.thresholds(probs, "single"),
                          torch.tensor([[0.3] * 4, [0.15] * 4]))
    per_class = predict.thresholds(probs, "multi", [0.1, 0.2, 0.3, 0.4])
    assert torch.allclose(per_class, torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 2))
    assert predict.present(torch.tensor([[0.9, 0.6, 0.1, 0.0], [0.1, 0.3, 0.2, 0.0]]),
                           "multi").tolist() == [[1, 1, 0, 0], [0, 1, 0, 0]], "at least one"


@pytest.mark.parametrize("seconds,sr,channels", [(7.3, 44_100, 2), (0.5, 8_000, 1),
                                                 (3.0, 96_000, 2)])
def test_any_rate_length_and_channel_count_gives_probabilities(checkpoint, tmp_path, seconds,
                                                              sr, channels):
    path = write_wav(tmp_path / "x.wav", seconds, sr, channels)
    result = predict.Predictor(checkpoint)(path)
    assert abs(result.seconds - seconds) < 0.01
    assert list(result.probabilities) == ["gac", "pia", "tru", "vio"]
    assert all(0 <= p <= 1 for p in result.probabilities.values()) and result.present


def test_probabilities_are_the_mean_over_windows(checkpoint):
    model, meta = checkpoints.load_model(checkpoint)
    wave = torch.randn(2, 2 * CLIP_SAMPLES) * 0.1
    probs = predict.probabilities(model, meta, wave, hop_seconds=CLIP_SAMPLES / 44_100,
                                  batch_size=1)
    halves = torch.stack([wave[:, :CLIP_SAMPLES], wave[:, CLIP_SAMPLES:]])
    with torch.no_grad():
        each = model(peak_normalise(halves)).sigmoid()
    assert torch.allclose(probs, each.mean(0), atol=1e-5)


def test_command_predicts_good_files_and_names_bad_ones(checkpoint, tmp_path, capsys):
    good = write_wav(tmp_path / "good song.wav", 4.0)
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    code = cli.main(["--checkpoint", str(checkpoint), str(bad), str(good), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.count("\n") == 1 and "notes.wav" in err and "Traceback" not in err
    failure, row = map(json.loads, out.splitlines())
    assert failure["file"] == str(bad) and "notes.wav" in failure["error"]
    assert row["path"] == str(good) and set(row["probabilities"]) == {"gac", "pia", "tru", "vio"}
    assert cli.main(["--checkpoint", str(checkpoint), str(good)]) == 0
    assert "good song.wav (4.0 s):" in capsys.readouterr().out


def test_command_refuses_what_is_not_a_usable_checkpoint(tmp_path, capsys):
    song = write_wav(tmp_path / "a.wav", 1.0)
    head = checkpoints.save_checkpoint(tmp_path / "head.pt", networks.build("transfer",
                                                                          n_outputs=len(CLASSES)),
                                       checkpoints.model_meta("transfer", task="multi",
                                                              classes=CLASSES))
    plain = tmp_path / "plain.pt"
    torch.save(networks.build("mel", n_outputs=len(CLASSES)).state_dict(), plain)
    for path, message in [(head, "features"), (plain, "not a checkpoint"),
                          (tmp_path / "none.pt", "no checkpoint")]:
        assert cli.main(["--checkpoint", str(path), str(song)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


@pytest.mark.parametrize("samples", [4 * 44_100, 1])
def test_silence_names_no_instrument(checkpoint, tmp_path, capsys, samples):
    path = tmp_path / "silence.wav"
    data = np.zeros((samples, 2), np.float32)
    data[0] = 0.3  # a lone click is not music either
    sf.write(path, data, 44_100)
    result = predict.Predictor(checkpoint)(path)
    assert result.silent and result.present == []
    assert all(p == 0 for p in result.probabilities.values())
    assert cli.main(["--checkpoint", str(checkpoint), str(path)]) == 0
    assert "silent, no instrument named" in capsys.readouterr().out


def test_silent_windows_are_left_out_of_the_average(checkpoint, tmp_path):
    tone = write_wav(tmp_path / "tone.wav", 6.0)
    data, sr = sf.read(tone, dtype="float32")
    padded = tmp_path / "tone then silence.wav"
    sf.write(padded, np.concatenate([data, np.zeros((12 * sr, 2), np.float32)]), sr)
    model, meta = checkpoints.load_model(checkpoint)
    heard = predict.hear(model, meta, read_audio(padded))
    # 18 s, a window every 1.5 s plus one ending at the end: 12; the 8 starting at 6 s or
    # later hear only silence
    assert (heard.windows, heard.silent) == (12, 8) and not heard.all_silent
    first_four = read_audio(padded)[:, :4 * 66_150 + 132_299 - 66_150]
    assert torch.allclose(heard.probs, predict.hear(model, meta, first_four).probs, atol=1e-5)


@pytest.mark.parametrize("rate", [44_099, 44_056, 22_050, 48_000])
def test_odd_sample_rates_cost_memory_in_proportion(checkpoint, tmp_path, rate):
    path = write_wav(tmp_path / f"odd {rate}.wav", 4.0, sr=rate)
    code = ("import resource, sys; from helpers.evaluate import predict; "
            "p = predict.Predictor(sys.argv[1]); p(sys.argv[2]); "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "r = p(sys.argv[2]); "
            "print(r.seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    done = subprocess.run([sys.executable, "-c", code, str(checkpoint), str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seconds, grown_kib = done.stdout.split()
    assert float(seconds) == pytest.approx(4.0, abs=0.01)
    assert int(grown_kib) < 100 * 1024, "no resampling kernel of gigabytes"


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_length_of_the_file(checkpoint, tmp_path):
    """After a 30-second file, a 10-minute one costs hardly more: it is read in blocks."""
    short = write_wav(tmp_path / "short.wav", 30.0, sr=22_050)
    long = write_wav(tmp_path / "long.wav", 600.0, sr=22_050)
    code = ("import resource, sys; from helpers.evaluate import predict; "
            "p = predict.Predictor(sys.argv[1]); p(sys.argv[2]); "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; p(sys.argv[3]); "
            "print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code, str(checkpoint), str(short), str(long)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    recording_kib = 600 * 44_100 * 2 * 4 // 1024  # the whole 10 minutes as float32: 207 MiB
    assert after - before < recording_kib / 4, (before, after)


@pytest.mark.parametrize("flag,value,message", [
    ("--hop", "0", "hop"), ("--hop", "-1", "hop"), ("--hop", "1e-9", "hop"),
    ("--hop", "nan", "hop"), ("--hop", "inf", "hop"), ("--hop", "4", "hop"),
    ("--threshold", "2", "threshold"), ("--threshold", "-1", "threshold"),
    ("--threshold", "nan", "threshold"), ("--device", "meta", "cpu or cuda")])
def test_the_command_rejects_bad_options_in_one_line(checkpoint, tmp_path, capsys, flag,
                                                      value, message):
    song = write_wav(tmp_path / "a.wav", 1.0)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--checkpoint", str(checkpoint), str(song), flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[-1] and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_cuda_without_a_gpu_says_so_not_blaming_the_checkpoint(checkpoint, tmp_path, capsys):
    song = write_wav(tmp_path / "a.wav", 1.0)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--checkpoint", str(checkpoint), str(song), "--device", "cuda"])
    assert exit_.value.code == 2 and "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize("kind", [k for k in BAD_KINDS if k != "truncated"])  # see
def test_each_bad_file_is_one_line_naming_it(checkpoint, tmp_path, capsys, kind):
    bad = bad_audio_files(tmp_path)[kind]
    good = write_wav(tmp_path / "fine.wav", 2.0)
    assert cli.main(["--checkpoint", str(checkpoint), str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {bad}") and err.count("\n") == 1
    assert out.startswith(str(good)), "the other files are still predicted"


@pytest.mark.slow
def test_ten_minute_recording(checkpoint, tmp_path):
    path = write_wav(tmp_path / "long.wav", 600.0, sr=22_050)
    result = predict.Predictor(checkpoint)(path)
    assert result.seconds == pytest.approx(600.0, abs=0.01) and result.present


def test_command_line_process_exit_status_and_no_traceback(checkpoint, tmp_path):
    good = write_wav(tmp_path / "a.wav", 3.0)
    missing = tmp_path / "missing.wav"
    done = subprocess.run([sys.executable, "-m", "helpers.cli", "--checkpoint",
                           str(checkpoint), str(good), str(missing)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "missing.wav" in done.stderr and done.stdout.startswith(str(good))


def test_console_script_is_installed(checkpoint, tmp_path):
    script = Path(sys.executable).parent / "irmas-predict"
    assert script.is_file(), "pip install . (or -e .) installs the irmas-predict command"
    song = write_wav(tmp_path / "b.wav", 2.0)
    done = subprocess.run([str(script), "--checkpoint", str(checkpoint), "--json", str(song)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"] == str(song)


def test_a_streamed_wav_with_an_unknown_riff_size_is_read_whole(checkpoint, tmp_path):
    path = write_wav(tmp_path / "streamed.wav", 4.0)
    data = bytearray(path.read_bytes())
    data[4:8] = b"\xff\xff\xff\xff"  # what streaming writers leave in the RIFF size field
    path.write_bytes(bytes(data))
    result = predict.Predictor(checkpoint)(path)
    assert result.seconds == pytest.approx(4.0, abs=0.01) and result.declared_seconds is None


def test_a_cut_off_mp3_says_how_much_decoded(checkpoint, tmp_path, capsys):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile writes no MP3")
    full = tmp_path / "full.mp3"
    rng = np.random.default_rng(0)
    sf.write(full, (0.1 * rng.standard_normal((4 * 44_100, 2))).astype(np.float32), 44_100,
             format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert cli.main(["--checkpoint", str(checkpoint), str(cut)]) == 0
    line = capsys.readouterr().out
    assert re.search(r"decoded [12]\.\d of 4\.0 s", line), line


def test_plot_draws_each_file_window_by_window(checkpoint, tmp_path, capsys):
    """`--plot DIR`: a PNG per file (a second file of the same name gets -2), and the JSON of
    each holds the timeline drawn: a window every hop, the quiet ones not counted."""
    loud = write_wav(tmp_path / "a" / "song.wav", seconds=6.0)
    data, sr = sf.read(loud)
    quiet = np.concatenate([data, 10 ** (-40 / 20) * data])  # its noise floor: left out
    sf.write(tmp_path / "song.wav", quiet.astype(np.float32), sr)
    out = tmp_path / "plots"
    code = cli.main(["--checkpoint", str(checkpoint), "--plot", str(out), "--json",
                         str(loud), str(tmp_path / "song.wav")])
    captured = capsys.readouterr()
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["song-2.png", "song.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
               for p in out.iterdir())
    assert f"plot: {out / 'song-2.png'}" in captured.err
    first, second = (json.loads(line) for line in captured.out.splitlines())
    end = 6.0 - CLIP_SAMPLES / 44_100  # the last window ends with the file
    assert first["timeline"]["starts"] == [0.0, 1.5, 3.0, pytest.approx(end)]
    assert all(first["timeline"]["counted"]) and len(first["timeline"]["probabilities"]) == 4
    heard = [p is not None for p in second["timeline"]["probabilities"]]
    left_out = [on and not c for on, c in zip(heard, second["timeline"]["counted"])]
    assert sum(left_out) == second["quiet_windows"] > 0
    probs = np.array([p for p, on in zip(second["timeline"]["probabilities"],
                                         second["timeline"]["counted"]) if on])
    assert np.allclose(probs.mean(0), list(second["probabilities"].values()), atol=1e-6)
    cli.main(["--checkpoint", str(checkpoint), "--json", str(loud)])
    assert "timeline" not in json.loads(capsys.readouterr().out), "only when drawn"


def test_a_stage2_checkpoint_whose_calibration_chose_the_count_rule_names_that_many(tmp_path):
    torch.manual_seed(0)
    meta = {**checkpoints.model_meta("mel", classes=CLASSES, task="multi"),
            "thresholds": [0.99] * len(CLASSES),
            "decoding": {"rule": "count, then which", "kind": "count", "val_exact": {}}}
    path = checkpoints.save_checkpoint(tmp_path / "count.pt",
                                       networks.build("mel", n_outputs=len(CLASSES)), meta)
    predictor = predict.Predictor(path)
    answer = predictor(write_wav(tmp_path / "a.wav", seconds=4.0))
    expected = max(1, round(sum(answer.probabilities.values())))  # at least one: names_nothing off
    assert predictor.count and len(answer.present) == expected, "not the 0.99 thresholds"
    assert predict.Predictor(path, threshold=0.99).count is False, "--threshold overrides it"
    bad = {**meta, "decoding": {"kind": "guess"}}
    broken = checkpoints.save_checkpoint(tmp_path / "bad.pt",
                                         networks.build("mel", n_outputs=len(CLASSES)), bad)
    with pytest.raises(checkpoints.CheckpointError, match="'decoding'.*thresholds or count"):
        checkpoints.load_model(broken)
