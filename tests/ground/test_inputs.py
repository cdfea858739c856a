"""What to ground (stvg.ground.inputs) and the one-line refusals of `stvg ground` (exit 2, 3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stvg.cli import app
from stvg.errors import InputError
from stvg.ground.inputs import Pair, gather_pairs

runner = CliRunner()


@pytest.fixture
def videos(tmp_path: Path, tiny_data: Path) -> Path:
    """A folder with two tiny videos and a file that is not a video."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("b.mp4", "a.mp4"):
        shutil.copy(tiny_data / "videos" / "v0000.mp4", folder / name)
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_video_with_sentences(videos):
    pairs = gather_pairs(videos / "a.mp4", ["the red  square\tjumps", "the blue cross spins"])
    assert pairs == [
        Pair("a_q0", videos / "a.mp4", "the red square jumps"),  # whitespace normalized
        Pair("a_q1", videos / "a.mp4", "the blue cross spins"),
    ]


def test_folder_takes_every_video_sorted(videos):
    pairs = gather_pairs(videos, ["the red square jumps"])
    assert [(p.sample_id, p.video.name) for p in pairs] == [("a_q0", "a.mp4"), ("b_q0", "b.mp4")]


def test_csv_and_json_pairs(videos):
    csv_file = videos / "pairs.csv"
    csv_file.write_text("video,sentence\na.mp4,the red square jumps\nb.mp4,x\na.mp4,y\n")
    pairs = gather_pairs(csv_file, [])
    assert [(p.sample_id, p.video, p.sentence) for p in pairs] == [
        ("a_q0", videos / "a.mp4", "the red square jumps"),  # relative to the CSV's folder
        ("b_q0", videos / "b.mp4", "x"),
        ("a_q1", videos / "a.mp4", "y"),
    ]
    json_file = videos / "pairs.json"
    rows = [{"video": str(videos / "b.mp4"), "sentence": "s", "sample_id": "mine"}]
    json_file.write_text(json.dumps({"pairs": rows}))
    assert gather_pairs(json_file, []) == [Pair("mine", videos / "b.mp4", "s")]


@pytest.mark.parametrize(
    "content, words",
    [
        (
            "video,sentence\na.mp4,ok\nb.mp4,   \n",
            "sample 2, field 'sentence': the sentence is empty",
        ),
        ("video,text\na.mp4,x\n", "field 'sentence': the CSV header must name"),
        ("video,sentence\nmissing.mp4,x\n", "field 'video': the video does not exist"),
        ("video,sentence\n", r"holds no video \+ sentence pair"),
        ("sample_id,video,sentence\ns,a.mp4,x\ns,b.mp4,y\n", "sample ids must be unique"),
    ],
)
def test_bad_csv_names_the_row_and_field(videos, content, words):
    path = videos / "pairs.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=words) as caught:
        gather_pairs(path, [])
    assert "\n" not in str(caught.value)


def test_bad_command_lines(videos):
    with pytest.raises(InputError, match="no sentence to ground"):
        gather_pairs(videos / "a.mp4", [])
    with pytest.raises(InputError, match="field 'sentence': the sentence is empty"):
        gather_pairs(videos / "a.mp4", ["ok", " "])
    with pytest.raises(InputError, match="no such video, folder or pairs file"):
        gather_pairs(videos / "nope.mp4", ["x"])
    (videos / "p.json").write_text("[]")
    with pytest.raises(InputError, match="sentences come from the pairs file"):
        gather_pairs(videos / "p.json", ["x"])
    (videos / "p.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="expected a list"):
        gather_pairs(videos / "p.json", [])


def test_cli_empty_sentence_exit_2_and_undecodable_video_exit_3(videos, tmp_path):
    """One line on stderr each; the video is probed before the run is even read."""
    run = tmp_path / "no-run"
    result = runner.invoke(app, ["ground", "--run", str(run), str(videos / "a.mp4"), "  "])
    assert result.exit_code == 2
    assert result.output.startswith("Bad input:") and result.output.count("\n") == 1
    assert "the sentence is empty" in result.output
    broken = videos / "broken.mp4"
    broken.write_bytes((videos / "a.mp4").read_bytes()[:600])  # cut short
    result = runner.invoke(app, ["ground", "--run", str(run), str(broken), "the red square"])
    assert result.exit_code == 3, result.output
    assert result.output.startswith("Bad input:") and result.output.count("\n") == 1
    assert "broken.mp4" in result.output and "cannot decode the video (truncated" in result.output
