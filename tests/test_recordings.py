"""Real recordings are not clean clips: noise floors, DC, antiphase, surround, cut files, pipes.

The instruments are the rendered clips of `tests/fixtures/musicnn/` (22.05 kHz stereo); the
model is the untrained Stage-2 checkpoint of `conftest`, so each test compares what the model
hears from a damaged recording with what it hears from the clean one: the answer a person
would give is "the same instrument".
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, write_wav

from helpers import cli
from helpers.data import audio
from helpers.evaluate import predict
from helpers.models import checkpoints

FIXTURES = REPO / "tests" / "fixtures" / "musicnn"
SR = 22_050


def _mono(name: str) -> np.ndarray:
    data, sr = sf.read(FIXTURES / f"{name}.wav", dtype="float32")
    assert sr == SR
    return data.mean(axis=1)


def _write(path, data: np.ndarray, sr: int = SR, **kwargs):
    sf.write(path, data if data.ndim == 2 else data[:, None], sr, **kwargs)
    return path


def _db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x))))


def _hiss(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal((int(seconds * SR), 2))
    return (noise * 10 ** (dbfs / 20)).astype(np.float32)


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return predict.Predictor(checkpoint)


def _probs(predictor, path) -> np.ndarray:
    return np.array(list(predictor(path).probabilities.values()))


def test_a_noise_floor_after_the_music_is_left_out(predictor, tmp_path, monkeypatch):
    """3 s of trumpet, then 57 s of tape hiss at -55 dBFS: the answer is the trumpet's windows'
    (those of the first 4.5 s: at 0 and 1.5 s), not the hiss's 38 windows'."""
    trumpet = np.repeat(_mono("tru")[:, None], 2, axis=1)
    assert _db(trumpet) > -35, "the fixture is an ordinary level"
    recording = np.concatenate([trumpet, _hiss(57, -55)])
    with_hiss = _write(tmp_path / "trumpet then hiss.wav", recording)
    music = _write(tmp_path / "the first 4.5 s.wav", recording[: int(4.5 * SR)])
    result = predictor(with_hiss)
    assert (result.windows, result.quiet_windows) == (40, 38)
    assert "38 of 40 windows left out: more than 30 dB below the loudest" in result.line()
    assert predictor(music).quiet_windows == 0
    assert np.abs(_probs(predictor, with_hiss) - _probs(predictor, music)).max() < 0.02
    monkeypatch.setattr(predict, "QUIET_DB", float("inf"))  # every window counted, as before
    assert np.abs(_probs(predictor, with_hiss) - _probs(predictor, music)).max() > 0.05


def test_dc_offset_alone_is_silence(predictor, tmp_path):
    dc = np.full((10 * SR, 2), 10 ** (-54 / 20), np.float32)
    result = predictor(_write(tmp_path / "dc.wav", dc))
    assert result.silent and result.present == []


def test_dc_under_music_changes_nothing(predictor, tmp_path):
    piano = np.repeat(_mono("pia")[:, None], 2, axis=1)
    clean = _probs(predictor, _write(tmp_path / "piano.wav", piano, subtype="FLOAT"))
    offset = _probs(predictor, _write(tmp_path / "piano + dc.wav", piano + 0.2,
                                      subtype="FLOAT"))
    assert np.abs(offset - clean).max() < 0.01


def test_antiphase_stereo_is_heard_as_the_instrument(predictor, tmp_path):
    piano = _mono("pia")
    clean = predictor(_write(tmp_path / "piano.wav", np.stack([piano, piano], 1)))
    flipped = predictor(_write(tmp_path / "antiphase.wav", np.stack([piano, -piano], 1)))
    assert not flipped.silent
    assert flipped.probabilities == pytest.approx(clean.probabilities, abs=1e-3)  # 16-bit


def test_ordinary_stereo_is_left_exactly_as_it_is():
    stereo = torch.tensor(sf.read(FIXTURES / "gac.wav", dtype="float32")[0].T.copy())
    assert torch.equal(audio.unflip(stereo), stereo)
    wide = torch.stack([stereo[0], -0.5 * stereo[0]])  # mostly side, but mid not 20 dB down
    assert torch.equal(audio.unflip(wide), wide)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_surround_is_folded_not_dropped(predictor, tmp_path, fmt):
    """5.1 with the piano in the centre channel only: BS.775 puts it in both sides."""
    piano = _mono("pia")
    surround = np.zeros((len(piano), 6), np.float32)
    centre = 1 if fmt == "OGG" else 2  # Vorbis order: L C R Ls Rs LFE
    surround[:, centre] = piano
    path = _write(tmp_path / f"centre.{fmt.lower()}", surround, format=fmt)
    result = predictor(path)
    assert not result.silent
    reference = _write(tmp_path / f"mono.{fmt.lower()}", piano, format=fmt)
    assert result.probabilities == pytest.approx(predictor(reference).probabilities,
                                                 abs=0.01 if fmt == "OGG" else 1e-5)


def test_downmix_weights_follow_bs775():
    frame = np.eye(6, dtype=np.float32)  # one channel at a time: L R C LFE Ls Rs
    folded = audio.fold_channels(frame)
    third = 10 ** (-3 / 20)
    np.testing.assert_allclose(folded, [[1, 0], [0, 1], [third, third], [0, 0], [third, 0],
                                        [0, third]], rtol=1e-6)
    assert audio.fold_channels(np.ones((4, 16), np.float32)).tolist() == [[1, 1]] * 4


def _cut(path, fraction=0.5):
    cut = path.with_name(f"cut {path.name}")
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    return cut


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
def test_a_cut_ogg_says_it_is_cut(checkpoint, predictor, tmp_path, capsys, subtype):
    sr = 48_000 if subtype == "OPUS" else 44_100
    whole = _write(tmp_path / f"song.{subtype.lower()}.ogg", _hiss(4, -20)[: 4 * SR], sr,
                   format="OGG", subtype=subtype)
    assert not predictor(whole).cut
    code = cli.main(["--checkpoint", str(checkpoint), str(_cut(whole))])
    out, err = capsys.readouterr()
    if code == 0:  # decoded up to the cut, and said so
        assert "cut: the stream ends without its last page" in out
    else:  # libsndfile's Opus reader cannot open a stream without its last page
        assert code == 1 and "cut off (its Ogg stream ends without the last page)" in err


@pytest.mark.parametrize("riff,data", [(0, 0), (0xFFFFFFFF, 0xFFFFFFFF),
                                       (0x7FFFF000, 0x7FFFF000 - 36),
                                       (0x7FFFFFFF, 0x7FFFFFFF - 36)])
def test_a_wav_written_to_a_pipe_is_read_whole(predictor, tmp_path, riff, data):
    """sox and recorders streaming to a pipe cannot go back to write the sizes."""
    path = write_wav(tmp_path / "piped.wav", 4.0)
    raw = bytearray(path.read_bytes())
    assert raw[36:40] == b"data"
    raw[4:8], raw[40:44] = riff.to_bytes(4, "little"), data.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    result = predictor(path)
    assert result.seconds == pytest.approx(4.0, abs=0.01) and not result.cut
    assert "length not recorded in its header" in result.line()


def test_a_cut_wav_is_predicted_and_says_how_much_decoded(predictor, tmp_path):
    cut = _cut(write_wav(tmp_path / "song.wav", 4.0))
    result = predictor(cut)
    assert result.cut and result.seconds == pytest.approx(2.0, abs=0.01)
    assert "decoded 2.0 of 4.0 s" in result.line()
    with pytest.raises(audio.AudioError, match="truncated, decoded 2.00 s of 4.00 s"):
        audio.load_clip(cut)  # a training clip must be whole


def test_an_8_bit_wav_missing_only_its_pad_byte_is_whole(predictor, tmp_path):
    path = _write(tmp_path / "u8.wav", _hiss(1, -20)[:4_001, :1], subtype="PCM_U8")
    raw = path.read_bytes()
    assert int.from_bytes(raw[40:44], "little") == 4_001 and len(raw) == 44 + 4_002
    path.write_bytes(raw[:-1])
    assert not predictor(path).cut
    assert audio.read_audio(path).shape[1] == pytest.approx(4_001 * 44_100 / SR, abs=2)


def test_a_rate_below_audio_is_refused(tmp_path):
    path = _write(tmp_path / "one hertz.wav", np.zeros(600, np.float32), sr=1)
    with pytest.raises(audio.AudioError, match="under 1,000 Hz"):
        audio.AudioStream(path)


def test_many_channels_cost_memory_by_bytes_not_seconds(checkpoint, tmp_path):
    """128 channels at 192 kHz: a 10 s block would be 983 MB of float32; blocks are 16 MiB."""
    path = tmp_path / "many.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 192_000, 128, subtype="PCM_16") as f:
        for _ in range(4):
            f.write((0.1 * rng.standard_normal((96_000, 128))).astype(np.float32))
    code = ("import resource, sys; from helpers.evaluate import predict; "
            "p = predict.Predictor(sys.argv[1]); p(sys.argv[2][:-8] + 'tiny.wav'); "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; r = p(sys.argv[2]); "
            "print(r.seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    write_wav(tmp_path / "tiny.wav", 2.0)
    done = subprocess.run([sys.executable, "-c", code, str(checkpoint), str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seconds, grown_kib = done.stdout.split()
    assert float(seconds) == pytest.approx(2.0, abs=0.01)
    assert int(grown_kib) < 120 * 1024


def _cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, timeout=300, **kwargs)


def test_a_fifo_neither_hangs_nor_blocks_the_others(checkpoint, tmp_path):
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    good = write_wav(tmp_path / "good.wav", 2.0)
    done = _cli("--checkpoint", checkpoint, fifo, good)
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1 and "pipe or device" in err
    assert "download" not in err and done.stdout.decode().startswith(str(good))


def test_dash_reads_standard_input(checkpoint, tmp_path):
    song = write_wav(tmp_path / "song.wav", 2.0).read_bytes()
    done = _cli("--checkpoint", checkpoint, "-", input=song)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("- (2.0 s): ")
    json_row = json.loads(_cli("--checkpoint", checkpoint, "--json", "-", input=song).stdout)
    assert json_row["file"] == "-" and json_row["seconds"] == pytest.approx(2.0, abs=0.01)


def test_a_name_that_is_not_utf8_is_printed_safely(checkpoint, tmp_path):
    name = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.wav")
    os.rename(write_wav(tmp_path / "cafe.wav", 2.0), name)
    done = _cli("--checkpoint", checkpoint, name)
    assert done.returncode == 0, done.stderr
    assert b"caf\\xe9.wav (2.0 s): " in done.stdout
    done = _cli("--checkpoint", checkpoint, "--json", name)
    assert json.loads(done.stdout)["file"].endswith("caf\\xe9.wav")


@pytest.mark.parametrize("kind", ["wav", "csv", "random bytes", "folder"])
def test_what_is_not_a_checkpoint_is_one_line_naming_the_option(tmp_path, kind):
    song = write_wav(tmp_path / "song.wav", 1.0)
    wrong = {"wav": song, "csv": tmp_path / "rows.csv", "random bytes": tmp_path / "x.pt",
             "folder": tmp_path}[kind]
    if kind == "csv":
        wrong.write_text("path,instrument\na.wav,pia\n")
    if kind == "random bytes":
        wrong.write_bytes(np.random.default_rng(0).bytes(5000))
    done = _cli("--checkpoint", wrong, song)
    err = done.stderr.decode()
    assert done.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --checkpoint {wrong}") and "weights_only" not in err


def test_json_is_strict_and_holds_one_object_per_input(checkpoint, tmp_path):
    good, missing = write_wav(tmp_path / "a.wav", 2.0), tmp_path / "missing.wav"
    done = _cli("--checkpoint", checkpoint, "--json", good, missing, good)
    assert done.returncode == 1
    rows = [json.loads(line, parse_constant=pytest.fail)
            for line in done.stdout.decode().splitlines()]
    assert [("error" in row) for row in rows] == [False, True, False]
    assert rows[1]["file"] == str(missing) and "missing.wav" in rows[1]["error"]


@pytest.mark.slow
def test_results_are_flushed_as_they_come_and_a_closed_pipe_ends_quietly(checkpoint, tmp_path):
    short, long = write_wav(tmp_path / "short.wav", 2.0), write_wav(tmp_path / "long.wav", 300.0)
    with subprocess.Popen([sys.executable, "-m", "helpers.cli", "--checkpoint",
                           str(checkpoint), str(short), str(long)], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as running:
        first = running.stdout.readline()  # block-buffered, it would come only at the end
        still_running = running.poll() is None
        running.stdout.close()  # the reader goes away, as `head -1` does
        _, err = running.communicate(timeout=300)
    assert first.startswith(str(short).encode()) and still_running
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_hearing_is_the_same_in_blocks_as_whole(predictor, tmp_path):
    """The high-pass carries its state across blocks: no seam where a block ends."""
    path = _write(tmp_path / "long piano.wav", np.tile(_mono("pia"), 8) + 0.1)
    whole = torch.cat(list(audio.AudioStream(path)), dim=1)
    small = torch.cat(list(audio.AudioStream(path, block_seconds=0.37)), dim=1)
    assert torch.allclose(whole, small, atol=1e-5)
    assert abs(whole.mean().item()) < 1e-3, "the offset is gone"


def test_checkpoint_metadata_tied_to_the_answer(checkpoint):
    _, meta = checkpoints.load_model(checkpoint)
    assert set(meta["bound"]) == {"model", "model_kwargs", "task", "sample_rate",
                                  "clip_samples"}
