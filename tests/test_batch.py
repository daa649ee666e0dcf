"""The batch commands (``retouch remove-background PATH... -o DIR`` and co.) on a folder of
generated images, in-process and against the live test server."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner, Result

from retouch.app_state import Services
from retouch.batch import collect, plan
from retouch.cli import app
from retouch.client import RetouchClient
from tests.utils.factories import make_account
from tests.utils.images import composite, decode, encode
from tests.utils.server import LiveServer

WIDTH, HEIGHT = 256, 192
GOOD = ("a.jpg", "b.png", "sub/c.png")


def _shot(seed: int) -> np.ndarray:
    rgb, _ = composite(("flat", "gradient", "blobs")[seed % 3], seed=seed)
    return cv2.resize(rgb, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``images/`` with two good images, one in a sub-folder, a corrupt one and a text file;
    the commands run from here with relative paths, as a user would type them."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    (images / "a.jpg").write_bytes(encode(_shot(0), "JPEG", quality=90))
    (images / "b.png").write_bytes(encode(_shot(1)))
    (images / "sub" / "c.png").write_bytes(encode(_shot(2)))
    (images / "broken.jpg").write_bytes(b"this is not an image")
    (images / "notes.txt").write_text("not an image either, and not named outright")
    monkeypatch.chdir(tmp_path)
    for name in ("RETOUCH_SERVER", "RETOUCH_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    # Wide enough that the summary table never wraps a path or a message.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **(env or {})})


def _outputs(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_local_remove_background_of_a_directory_reports_the_corrupt_file_and_does_the_rest(
    workdir: Path,
) -> None:
    result = invoke("remove-background", "images", "-o", "out", "--jobs", "2")

    assert result.exit_code == 1, result.output
    assert _outputs(workdir / "out") == {"a.png", "b.png", "sub/c.png"}
    for name in ("a.png", "b.png", "sub/c.png"):
        image = decode((workdir / "out" / name).read_bytes())
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (WIDTH, HEIGHT))
    assert "images/broken.jpg" in result.stdout
    assert "malformed_image: The file is not a recognisable image" in result.stdout
    assert "notes.txt" not in result.output
    assert "3 ok, 0 skipped, 1 failed" in result.stdout


def test_a_glob_is_expanded_and_a_second_run_skips_what_is_done_unless_overwrite(
    workdir: Path,
) -> None:
    pattern = "images/*.png"  # quoted: the command expands it, not the shell

    first = invoke("remove-background", pattern, "-o", "out")
    assert first.exit_code == 0, first.output
    assert _outputs(workdir / "out") == {"b.png"}
    written = (workdir / "out" / "b.png").stat()

    again = invoke("remove-background", pattern, "-o", "out")
    assert again.exit_code == 0, again.output
    assert "0 ok, 1 skipped, 0 failed" in again.stdout
    assert (workdir / "out" / "b.png").stat().st_mtime_ns == written.st_mtime_ns

    forced = invoke("remove-background", pattern, "-o", "out", "--overwrite")
    assert forced.exit_code == 0, forced.output
    assert "1 ok, 0 skipped, 0 failed" in forced.stdout
    # Replaced by a rename, never rewritten in place.
    assert (workdir / "out" / "b.png").stat().st_ino != written.st_ino
    assert _outputs(workdir / "out") == {"b.png"}


def test_local_upscale_doubles_the_size_in_the_format_the_endpoint_chooses(
    workdir: Path,
) -> None:
    rgba = np.dstack([_shot(3), np.full((HEIGHT, WIDTH), 255, np.uint8)])
    rgba[:40, :40, 3] = 0
    (workdir / "images" / "alpha.png").write_bytes(encode(rgba))

    result = invoke("upscale", "images/a.jpg", "images/alpha.png", "-o", "up", "--scale", "2")

    assert result.exit_code == 0, result.output
    assert _outputs(workdir / "up") == {"a.jpg", "alpha.png"}
    jpeg = decode((workdir / "up" / "a.jpg").read_bytes())
    assert (jpeg.format, jpeg.size) == ("JPEG", (2 * WIDTH, 2 * HEIGHT))
    png = decode((workdir / "up" / "alpha.png").read_bytes())
    assert (png.format, png.mode, png.size) == ("PNG", "RGBA", (2 * WIDTH, 2 * HEIGHT))


def test_local_outpaint_and_generate_background_name_their_outputs_by_result_type(
    workdir: Path,
) -> None:
    painted = invoke("outpaint", "images/a.jpg", "-o", "wide", "--right", "32", "--format", "png")
    assert painted.exit_code == 0, painted.output
    image = decode((workdir / "wide" / "a.png").read_bytes())
    assert (image.format, image.size) == ("PNG", (WIDTH + 32, HEIGHT))

    scene = invoke("generate-background", "images/b.png", "-o", "scenes", "--scene", "marble")
    assert scene.exit_code == 0, scene.output
    image = decode((workdir / "scenes" / "b.jpg").read_bytes())
    assert (image.format, image.size) == ("JPEG", (1024, 1024))


def test_server_mode_charges_one_credit_per_image_and_gives_the_local_result(
    workdir: Path, server: LiveServer, services: Services
) -> None:
    account = make_account(services, credits=10)

    result = invoke(
        "remove-background", "images", "-o", "remote", "--jobs", "2",
        "--server", server.url, "--api-key", account.key,
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    assert "3 ok, 0 skipped, 1 failed" in result.stdout
    assert "malformed_image" in result.stdout
    with RetouchClient(account.key, base_url=server.url) as client:
        assert client.credits() == 7  # the corrupt file cost nothing
    local = invoke("remove-background", "images", "-o", "local")
    assert _outputs(workdir / "remote") == _outputs(workdir / "local") == {
        "a.png", "b.png", "sub/c.png",
    }  # fmt: skip
    for name in _outputs(workdir / "local"):
        assert (workdir / "remote" / name).read_bytes() == (workdir / "local" / name).read_bytes()
    assert local.exit_code == 1


def test_server_mode_with_a_bad_key_reports_every_file_as_failed(
    workdir: Path, server: LiveServer
) -> None:
    result = invoke(
        "remove-background",
        "images",
        "-o",
        "out",
        env={"RETOUCH_SERVER": server.url, "RETOUCH_API_KEY": "sk_" + "x" * 43},
    )

    assert result.exit_code == 1, result.output
    assert "0 ok, 0 skipped, 4 failed" in result.stdout
    assert result.stdout.count("invalid_auth_token: API Token not found") == 4
    assert _outputs(workdir / "out") == set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("upscale", "images", "-o", "out", "--scale", "3"), "Invalid scale: must be 2 or 4"),
        (
            ("outpaint", "images", "-o", "out"),
            "At least one of left, top, right and bottom must be greater than 0",
        ),
        (
            ("remove-background", "images", "-o", "out", "--crop", "--margin", "60%"),
            "Invalid margin: '60%' is over the 49% maximum",
        ),
        (
            ("generate-background", "images", "-o", "out", "--x-center", "2"),
            "Invalid image_transform.x_center: Input should be less than or equal to 1",
        ),
        (("upscale", "images", "-o", "out", "--server", "http://x"), "--server needs an API key"),
        (("upscale", "images/*.gif", "-o", "out"), "No files match images/*.gif"),
        (("upscale", "images", "missing.jpg", "-o", "out"), "No such file or directory"),
    ],
)
def test_bad_usage_exits_2_with_the_apis_message_before_any_work(
    workdir: Path, args: tuple[str, ...], message: str
) -> None:
    result = invoke(*args)

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (workdir / "out").exists()


def test_collect_and_plan_decide_names_skips_and_clashes(tmp_path: Path) -> None:
    images = tmp_path / "images"
    out = images / "out"  # inside the input folder: its files are never taken as inputs
    (images / "sub").mkdir(parents=True)
    for name in ("a.jpg", "a.png", "shot.v2.webp", "B.JPEG", ".hidden.png", "sub/c.png"):
        (images / name).write_bytes(b"")
    out.mkdir()
    (out / "shot.v2.png").write_bytes(b"done")
    (out / ".B.png.0123.part").write_bytes(b"half")  # left by an interrupted run
    (out / "old.png").write_bytes(b"an earlier output")

    items = collect([str(images), str(images / "a.jpg")], out)

    assert [item.source.relative_to(images).as_posix() for item in items] == [
        "B.JPEG", "a.jpg", "a.png", "shot.v2.webp", "sub/c.png",
    ]  # fmt: skip
    assert [item.output("png") for item in items] == [
        out / "B.png", out / "a.png", out / "a.png", out / "shot.v2.png", out / "sub" / "c.png",
    ]  # fmt: skip
    pending, settled = plan(items, ("png",), overwrite=False)
    assert [item.source.name for item in pending] == ["B.JPEG", "a.jpg", "c.png"]
    assert [(o.item.source.name, o.status) for o in settled] == [
        ("a.png", "failed"),
        ("shot.v2.webp", "skipped"),
    ]
    assert "same output name as" in settled[0].detail
    pending, _ = plan(items, ("png",), overwrite=True)
    assert [item.source.name for item in pending] == ["B.JPEG", "a.jpg", "shot.v2.webp", "c.png"]
