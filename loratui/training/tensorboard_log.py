"""TensorBoard scalars for a training run, with kohya's tags, written without TensorBoard or TensorFlow installed.

An event file is a TFRecord stream of ``tensorflow.Event`` protobuf messages. Scalars need only a handful of
fields, so the messages are encoded here by hand (as the demo's ONNX tagger is): training on a rented GPU box then
needs no extra package, and the user views the folder with ``tensorboard --logdir logs/tensorboard`` wherever
TensorBoard is installed (on the box, or on a laptop after copying the folder).

Record framing (TFRecord): ``uint64 length``, ``uint32 masked_crc32c(length)``, ``data``,
``uint32 masked_crc32c(data)``, little-endian. The tags are kohya's (`research/kohya.md` "Logging"), so runs from
both tools line up in one TensorBoard.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections import deque
from pathlib import Path

from loratui.protobuf_wire import bytes_field, double_field, float_field, string_field, varint_field

FILE_VERSION = "brain.Event:2"
# kohya's tag names: `lr/textencoder` only when the text encoder trains; `loss/epoch_average` once per epoch.
LOSS_CURRENT, LOSS_AVERAGE, LOSS_EPOCH = "loss/current", "loss/average", "loss/epoch_average"
LR_UNET, LR_TEXT_ENCODER = "lr/unet", "lr/textencoder"


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli polynomial, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def encode_event(wall_time: float, step: int = 0, *, file_version: str | None = None,
                 scalars: dict[str, float] | None = None) -> bytes:
    """``Event{wall_time=1 double, step=2 int64, file_version=3 string, summary=5 Summary}`` where
    ``Summary{value=1 repeated Value{tag=1 string, simple_value=2 float}}``."""
    message = double_field(1, wall_time)
    if step:
        message += varint_field(2, step)
    if file_version is not None:
        message += string_field(3, file_version)
    if scalars:
        values = b"".join(bytes_field(1, string_field(1, tag) + float_field(2, value))
                          for tag, value in scalars.items())
        message += bytes_field(5, values)
    return message


def frame_record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


class EventFileWriter:
    """Appends scalar events to one ``events.out.tfevents.<time>.<host>`` file, flushed after every write so a
    TensorBoard watching the folder sees each step (and a killed run loses nothing already logged)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = folder / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}"
        self._file = open(self.path, "ab")  # noqa: SIM115 (kept open for the run, closed in close())
        self._write(encode_event(now, file_version=FILE_VERSION))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._write(encode_event(time.time(), step, scalars=values))

    def _write(self, event: bytes) -> None:
        self._file.write(frame_record(event))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TrainingBoard:
    """The loop's TensorBoard log: kohya's step and epoch tags in ``logs/tensorboard/<name>-<YYYYmmddHHMMSS>/``.

    ``loss/average`` is kohya's: the mean of the latest loss at each position of an epoch, i.e. of the last
    steps-per-epoch losses, so it is comparable between a fresh and a resumed run.
    """

    def __init__(self, logs_dir: Path, output_name: str, steps_per_epoch: int, train_text_encoder: bool):
        run = f"{output_name}-{time.strftime('%Y%m%d%H%M%S')}"
        self.writer = EventFileWriter(logs_dir / "tensorboard" / run)
        self.window: deque[float] = deque(maxlen=max(1, steps_per_epoch))
        self.epoch_losses: list[float] = []
        self.train_text_encoder = train_text_encoder

    def step(self, step: int, loss: float, learning_rates: list[float]) -> None:
        self.window.append(loss)
        self.epoch_losses.append(loss)
        values = {LOSS_CURRENT: loss, LOSS_AVERAGE: sum(self.window) / len(self.window),
                  LR_UNET: float(learning_rates[0])}
        if self.train_text_encoder and len(learning_rates) > 1:
            values[LR_TEXT_ENCODER] = float(learning_rates[1])
        self.writer.scalars(step, values)

    def epoch(self, epoch: int) -> None:
        """kohya logs the epoch's mean loss with the epoch number as the step."""
        if self.epoch_losses:
            self.writer.scalars(epoch, {LOSS_EPOCH: sum(self.epoch_losses) / len(self.epoch_losses)})
        self.epoch_losses = []

    def close(self) -> None:
        self.writer.close()
