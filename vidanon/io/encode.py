"""Streaming encode with PyAV: video re-encoded frame by frame with the input's pts,
every other stream remuxed packet for packet (or re-encoded, or dropped, with a
warning that names it)."""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
from av.video.reformatter import ColorRange, VideoReformatter

from vidanon.config import EncodeConfig
from vidanon.errors import CodecError, ConfigError, OutputError
from vidanon.io.decode import Demuxer, PacketItem, stored
from vidanon.types import FrameMeta, VideoInfo

log = logging.getLogger("vidanon")

# metadata keys that are never personal and are always kept
_SAFE_STREAM_KEYS = ("language", "title", "handler_name")
_ODD_OK_FORMAT = {"libx264": "yuv444p", "libx265": "yuv444p"}
# FFmpeg's YUV matrices (AVColorSpace) that swscale can write, by its own names; the input's
# matrix is kept where it is one of these (BT.709, FCC, BT.601 twice, SMPTE 240M, BT.2020 NCL;
# BT.2020's constant-luminance form is no matrix: `_color_setup` writes BT.709 for it)
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020"}
# muxers that take the encoder's frames (the probe of `_can_encode` passes) and store them
# wrongly: FFmpeg's MXF muxer writes H.264 with B-frames out of order (read back, the frames
# of samples/people.mp4 came as 0, 3, 2, 4, 1, ...)
_REFUSED_FORMATS = {"mxf": "its muxer stores H.264 frames out of order"}


@dataclass
class EncodeStats:
    frames: int = 0
    streams_copied: list[str] = field(default_factory=list)
    streams_reencoded: list[str] = field(default_factory=list)
    streams_dropped: list[str] = field(default_factory=list)
    packets_dropped: int = 0
    pts_fixed: int = 0


@contextmanager
def _quiet_probe() -> Iterator[None]:
    """FFmpeg logging off for a probe: its refusal is expected, not an error to count."""
    level = av.logging.get_level()
    av.logging.set_level(None)
    try:
        yield
    finally:
        av.logging.set_level(level)


def _can_mux(fmt: str, stream: av.stream.Stream) -> bool:
    """Whether the muxer really takes a copy of `stream`: some accept a codec in their
    list and refuse it when writing the header (e.g. opus in mov) or the trailer."""
    import io

    try:
        with _quiet_probe(), av.open(io.BytesIO(), "w", format=fmt) as probe:
            copy = probe.add_stream_from_template(stream)
            probe.start_encoding()
            if (stream.codec_context.name or "").startswith("pcm_"):
                # raw samples are any bytes, so a packet of silence can be written: mp4
                # refuses PCM of an unnamed channel layout only when it writes its trailer
                packet = av.Packet(bytes(256 * max(1, stream.codec_context.channels or 1)))
                packet.pts = packet.dts = 0
                packet.stream = copy
                probe.mux(packet)
        return True
    except (av.error.FFmpegError, ValueError, TypeError, OSError):
        return False


def _audio_rate(codec: str, rate: int) -> int:
    """`rate` if the encoder `codec` takes it, else the next higher rate it takes (the highest
    if none is higher): Opus, WebM's audio codec, takes 48 kHz but not 44.1 kHz."""
    try:
        rates = av.Codec(codec, "w").audio_rates
    except (av.error.FFmpegError, ValueError):
        return rate
    if not rates or rate in rates:
        return rate
    higher = [r for r in rates if r > rate]
    return min(higher) if higher else max(rates)


def _named_layout(layout: av.AudioLayout | None) -> str:
    """The layout to re-encode audio in: the input's, or where its channels have no names
    ("2 channels", as from raw PCM in Matroska, which AAC refuses), the usual one of as many."""
    if layout is None:
        return "stereo"
    if any(ch.name != "NONE" for ch in layout.channels):
        return layout.name
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(layout.nb_channels, layout.name)


def _video_pix_fmt(codec: str, width: int, height: int) -> str:
    """yuv420p, or for an odd frame size a format that keeps every pixel where the codec has one."""
    return _ODD_OK_FORMAT.get(codec, "yuv420p") if width % 2 or height % 2 else "yuv420p"


def _add_video_stream(
    out: av.container.OutputContainer, codec: str, rate: Fraction, time_base: Fraction, width: int, height: int
) -> av.video.stream.VideoStream:
    """A video stream for `codec` on `out`, sized, in its pixel format and on the input's clock:
    what the writer encodes into, and what `_can_encode` probes."""
    st = out.add_stream(codec, rate=rate)
    st.width, st.height = width, height
    pix = _video_pix_fmt(codec, width, height)
    formats = [f.name for f in (st.codec_context.codec.video_formats or [])]
    st.pix_fmt = pix if not formats or pix in formats else formats[0]
    st.time_base = time_base
    st.codec_context.time_base = time_base
    return st


def _can_encode(fmt: str, codec: str, rate: Fraction, time_base: Fraction, width: int, height: int) -> str | None:
    """Why the muxer `fmt` cannot take `codec` set up as the writer sets it up, or None if
    it can. PyAV lists only the codecs a muxer declares (mpegts declares none but MPEG-2,
    yet takes H.264), and an encoder may refuse the input's timing (MPEG-1/2 needs a
    standard frame rate): a probe that writes a header, one black frame and the trailer
    tells. The frame is needed: some muxers refuse a trailer with no frame before it (gif:
    "Invalid argument") although they take frames."""
    import io

    try:
        with _quiet_probe(), av.open(io.BytesIO(), "w", format=fmt) as probe:
            st = _add_video_stream(probe, codec, rate, time_base, width, height)
            probe.start_encoding()
            black = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
            black.pts = 0
            for packet in [*st.encode(black), *st.encode()]:
                probe.mux(packet)
        return None
    except av.codec.codec.UnknownCodecError:
        return f"no {codec} encoder in this FFmpeg"
    except (av.error.FFmpegError, ValueError, TypeError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# x264 preset names -> NVENC's p1 (fastest) .. p7 (best)
_NVENC_PRESETS = {
    "ultrafast": "p1",
    "superfast": "p1",
    "veryfast": "p2",
    "faster": "p3",
    "fast": "p4",
    "medium": "p4",
    "slow": "p5",
    "slower": "p6",
    "veryslow": "p7",
}


def _nvenc_options(cfg: EncodeConfig) -> dict[str, str]:
    """Constant-quality NVENC settings equivalent to the x264 ones (cq takes crf's scale)."""
    return {"preset": _NVENC_PRESETS.get(cfg.preset, cfg.preset), "rc": "vbr", "cq": str(cfg.crf), "b": "0"}


def _nvenc_problem(codec: str, width: int, height: int, rate: Fraction) -> str | None:
    """Why `codec` (an NVENC encoder) cannot encode here, or None when a probe encoder opens.

    NVENC is compiled into PyAV's FFmpeg, but opening it needs an NVIDIA GPU and
    driver; without them the run falls back to libx264 instead of failing.
    """
    try:
        with _quiet_probe():
            ctx = av.codec.CodecContext.create(codec, "w")
            ctx.width, ctx.height = max(2, width - width % 2), max(2, height - height % 2)
            ctx.pix_fmt = "yuv420p"
            ctx.time_base = 1 / rate
            ctx.framerate = rate
            ctx.open()
        return None
    except (av.error.FFmpegError, ValueError, TypeError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _palette_graph(width: int, height: int, time_base: Fraction) -> av.filter.Graph:
    """An FFmpeg filter graph that gives each RGB frame its own 256-colour palette (palettegen
    with per-frame statistics, paletteuse with error diffusion), for GIF output: GIF's fixed
    3-3-2 palette (rgb8) left a photo's frames 17 levels from the input on average, this 5."""
    import av.filter

    graph = av.filter.Graph()
    src = graph.add_buffer(width=width, height=height, format="rgb24", time_base=time_base)
    split = graph.add("split")
    gen = graph.add("palettegen", "stats_mode=single:reserve_transparent=0")
    use = graph.add("paletteuse", "new=1:dither=sierra2_4a")
    sink = graph.add("buffersink")
    src.link_to(split)
    split.link_to(gen, 0, 0)
    split.link_to(use, 1, 0)
    gen.link_to(use, 0, 1)
    use.link_to(sink)
    graph.configure()
    return graph


def _pulled(graph: av.filter.Graph) -> list[av.VideoFrame]:
    """The frames `graph` has ready (it holds some back until it has seen more)."""
    out = []
    while True:
        try:
            out.append(graph.pull())
        except (av.error.BlockingIOError, av.error.EOFError):
            return out


# A text that gives a position: two numbers with 4 or more decimals (degrees to ~10 m) next to
# a word for one (GPS, lat/latitude, lon/longitude), with hemisphere letters, or an NMEA sentence. Drones (DJI: "GPS
# (8.5417, 47.3769, 20)" or "[latitude: 47.376900] [longitude: 8.541700]") and dashcams write
# one into a subtitle track every frame.
_DEGREES = re.compile(r"-?\d{1,3}\.\d{4,}")
_PLACE_WORD = re.compile(r"\bGPS\b|\blat(itude)?\b|\blon(gitude)?\b|\blng\b", re.IGNORECASE)
_NMEA = re.compile(r"\$G[PNL](RMC|GGA|GLL),")
_HEMISPHERES = re.compile(r"\b[NS] ?\d{1,2}\.\d{4,}\W+[EW] ?\d{1,3}\.\d{4,}")  # dashcams: "N47.3769 E8.5417"
LOCATED_SHARE = 0.5  # of a track's first packets that must give a position


def _gives_position(text: str) -> bool:
    if _NMEA.search(text) or _HEMISPHERES.search(text):
        return True
    return len(_DEGREES.findall(text)) >= 2 and bool(_PLACE_WORD.search(text))


def located_subtitles(path: Path, indices: list[int], packets: int = 20, seconds: float = 30.0) -> set[int]:
    """The subtitle streams among `indices` of the file at `path` whose text gives GPS
    positions (`_gives_position`) in at least LOCATED_SHARE of their first `packets` packets,
    read from the file's first `seconds`: location data kept as subtitles, which stripping
    the metadata does not reach. A dialogue line that names a place once is not enough. A
    file that cannot be read again keeps its subtitles (the run itself then fails on it)."""
    seen: dict[int, list[bool]] = {i: [] for i in indices}
    start = None  # the first packet's time: a transport stream's clock starts anywhere
    try:
        with av.open(str(path), "r", metadata_errors="ignore") as c:
            for p in c.demux():  # every stream's packets, so that the file's clock bounds the read
                if p.size and p.stream.index in seen and len(seen[p.stream.index]) < packets:
                    seen[p.stream.index].append(_gives_position(bytes(p).decode("utf-8", "ignore")))
                if p.pts is not None and p.time_base is not None:
                    t = float(p.pts * p.time_base)
                    start = t if start is None else min(start, t)
                    if t - start > seconds:
                        break
                if all(len(v) >= packets for v in seen.values()):
                    break
    except (av.error.FFmpegError, OSError, ValueError):
        return set()
    return {i for i, v in seen.items() if v and sum(v) >= LOCATED_SHARE * len(v)}


def _describe(stream: av.stream.Stream) -> str:
    name = stream.codec_context.name if stream.codec_context else "unknown"
    return f"#{stream.index} {stream.type} ({name})"


def _io_error(exc: BaseException, path: Path) -> OutputError:
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or "No space left" in str(exc):
        return OutputError(f"{path}: no space left on device")
    return OutputError(f"{path}: write failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")


class VideoWriter:
    """Writes the anonymized video to `path`, carrying over the input's other streams.

    Args:
        path: file to write (the pipeline passes a temporary name).
        fmt: container format name (from the final file's extension), or None to guess.
        demuxer: the open input; its streams are mapped on construction.
        cfg: encoder settings.
        name: the path errors name (the final file's, where `path` is a temporary one).
    """

    def __init__(
        self, path: Path, fmt: str | None, demuxer: Demuxer, cfg: EncodeConfig, name: Path | None = None
    ) -> None:
        self.path = path
        self.name = name or path
        self.cfg = cfg
        self.info: VideoInfo = demuxer.info
        self.stats = EncodeStats()
        self.warnings: list[str] = []
        try:
            self.out = av.open(str(path), "w", format=fmt)
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise OutputError(f"{self.name}: cannot create output ({str(exc).splitlines()[0]})") from None
        try:
            self._setup(demuxer)
        except BaseException:
            self.out.close()
            raise
        self._last_pts: int | None = None
        self._step = self._frame_step()
        self._audio_samples: dict[int, int] = {}  # re-encoded audio: samples written per input stream

    # --- setup -----------------------------------------------------------
    def _setup(self, demuxer: Demuxer) -> None:
        src = demuxer.container
        if self.cfg.keep_metadata:
            for k, v in src.metadata.items():
                self.out.metadata[k] = v
        self.video = self._add_video(demuxer)
        self._copy_chapters(src)
        self.map: dict[int, tuple[str, av.stream.Stream, object]] = {}
        subtitles = [s.index for s in src.streams if s.type == "subtitle"]
        located = set() if self.cfg.keep_metadata or not subtitles else located_subtitles(demuxer.path, subtitles)
        for s in src.streams:
            if s.index == demuxer.video.index:
                continue
            name = s.codec_context.name if s.codec_context else None
            desc = _describe(s)
            if s.type == "video":
                self._drop(
                    desc,
                    f"only one video stream (#{demuxer.video.index}) is anonymized; other video streams could show faces",
                )
                continue
            if s.index in located:
                self._drop(desc, "its text gives GPS positions, where the video was shot (--keep-metadata keeps it)")
                continue
            # a muxer's own list can be incomplete (mpegts lists no AAC): for audio a probe decides
            listed = name in self.out.supported_codecs
            if name and (listed or s.type == "audio") and _can_mux(self.out.format.name, s):
                try:
                    o = self.out.add_stream_from_template(s)
                    self._copy_meta(s, o)
                    self.map[s.index] = ("copy", o, None)
                    self.stats.streams_copied.append(desc)
                    continue
                except (av.error.FFmpegError, ValueError, TypeError):
                    pass
            if s.type == "audio" and self.out.default_audio_codec not in (None, "none"):
                codec = self.out.default_audio_codec
                try:
                    o = self.out.add_stream(codec, rate=_audio_rate(codec, s.codec_context.sample_rate or 48000))
                    o.layout = _named_layout(s.codec_context.layout)
                    self._copy_meta(s, o)
                    self.map[s.index] = ("reencode", o, s.codec_context)
                    self.stats.streams_reencoded.append(desc)
                    self.warnings.append(
                        f"audio stream {desc} cannot be copied into {self.out.format.name}; re-encoding it as {codec}"
                    )
                    continue
                except (av.error.FFmpegError, ValueError, TypeError) as exc:
                    self._drop(desc, f"re-encoding failed ({exc})")
                    continue
            what = name or f"this {s.type} stream"  # a data stream may name no codec
            self._drop(desc, f"the {self.out.format.name} container does not accept {what}")

    def _copy_chapters(self, src: av.container.InputContainer) -> None:
        """The input's chapters (marks in the timeline, with their titles; other chapter
        metadata only with keep_metadata), for the containers that store them."""
        try:
            chapters = src.chapters()
        except (AttributeError, av.error.FFmpegError, ValueError):
            return
        if not chapters:
            return
        for ch in chapters:
            ch["metadata"] = self._kept_meta(ch.get("metadata", {}))
        try:
            self.out.set_chapters(chapters)
        except (AttributeError, av.error.FFmpegError, ValueError, TypeError) as exc:  # AttributeError: old PyAV
            self.warnings.append(f"the input's {len(chapters)} chapter(s) could not be kept ({exc})")

    def _drop(self, desc: str, why: str) -> None:
        self.stats.streams_dropped.append(desc)
        self.warnings.append(f"dropped stream {desc}: {why}")

    def _kept_meta(self, metadata: dict) -> dict:
        """The entries of a stream's or chapter's metadata that the output keeps: the never
        personal ones (_SAFE_STREAM_KEYS), or all with keep_metadata."""
        return {k: v for k, v in metadata.items() if self.cfg.keep_metadata or k in _SAFE_STREAM_KEYS}

    def _copy_meta(self, src: av.stream.Stream, dst: av.stream.Stream) -> None:
        for k, v in self._kept_meta(src.metadata).items():
            dst.metadata[k] = v
        try:
            dst.disposition = src.disposition
        except (AttributeError, TypeError, ValueError):
            pass

    def _add_video(self, demuxer: Demuxer) -> av.video.stream.VideoStream:
        info = self.info
        codec = self.cfg.codec
        fmt_codecs = self.out.supported_codecs
        try:
            codec_id = av.codec.Codec(codec, "w").name
        except (av.error.FFmpegError, ValueError):
            raise ConfigError(f"--codec: no video encoder {codec!r} in this FFmpeg (e.g. libx264, libx265)") from None
        rate = info.average_rate or Fraction(30, 1)
        sw, sh = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
        fmt = self.out.format.name
        if fmt in _REFUSED_FORMATS:
            raise OutputError(
                f"cannot write {fmt} output: {_REFUSED_FORMATS[fmt]}; write .mp4, .mkv, .mov, .webm or .ts"
            )
        if (
            codec_id not in fmt_codecs
            and codec not in fmt_codecs
            and _can_encode(fmt, codec, rate, info.time_base, sw, sh)
        ):
            fallback = self.out.default_video_codec
            fallback = {"vp9": "libvpx-vp9", "vp8": "libvpx", "h264": "libx264"}.get(fallback, fallback)
            why = _can_encode(fmt, fallback, rate, info.time_base, sw, sh) if fallback not in (None, "none") else "none"
            if why:
                raise OutputError(
                    f"cannot write {fmt} output: the container does not take {codec}, and its own video codec "
                    f"{fallback} fails here ({why}); write .mp4, .mkv, .mov, .webm or .ts"
                )
            self.warnings.append(f"the {fmt} container does not accept {codec}; encoding video as {fallback}")
            codec = fallback
        if codec.endswith("_nvenc"):
            why = _nvenc_problem(codec, sw, sh, rate)
            if why:
                self.warnings.append(f"{codec} cannot encode here ({why}); encoding video as libx264")
                codec = "libx264"
        st = _add_video_stream(self.out, codec, rate, info.time_base, sw, sh)
        pix = _video_pix_fmt(codec, sw, sh)
        if pix != "yuv420p":
            self.warnings.append(f"odd frame size {sw}x{sh}: encoding as {pix} to keep every pixel")
        opts = {}
        interlaced = codec == "libx264" and info.field_order >= 2
        if codec in ("libx264", "libx265"):
            opts = {"crf": str(self.cfg.crf), "preset": self.cfg.preset}
            if fmt == "avi":  # AVI stores no pts: B-frames' reordered times would be lost
                opts["bf"] = "0"
            if interlaced:
                # interlaced in, interlaced out (the fields as they were, marked so that players
                # deinterlace them): top field first for 2 and 4, bottom first for 3 and 5
                opts["flags"] = "+ildct+ilme"
                opts["x264-params"] = "tff=1" if info.field_order in (2, 4) else "bff=1"
        elif codec.startswith("libvpx"):
            opts = {"crf": str(min(63, self.cfg.crf + 12)), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        elif codec.endswith("_nvenc"):
            opts = _nvenc_options(self.cfg)
        st.codec_context.options = opts
        if codec in ("libx264", "libx265"):
            # a fixed count, not x264's "auto": the output bytes depend on it
            st.codec_context.thread_count = self.cfg.thread_count()
            if interlaced and not self.cfg.threads:
                # interlaced, x264 on more than one thread wrote other bytes on every run (5 of 5
                # on a 720p clip; 1 thread: the same every time, and here no slower: 47 against
                # 42-46 frames/s in blur mode, the other stages taking the second core)
                st.codec_context.thread_count = 1
        self._to_yuv = self._color_setup(st)
        self._reformatter = VideoReformatter()
        self._palette = None
        if codec == "gif":
            st.pix_fmt = "pal8"
            self._palette = _palette_graph(sw, sh, info.time_base)
        if info.pixel_aspect is not None:  # anamorphic: stored pixels as the input's, shown as wide
            st.codec_context.sample_aspect_ratio = info.pixel_aspect
            if fmt in ("webm", "matroska") and codec.startswith("libvpx"):
                # VP8/9 carry no pixel shape and the muxer takes it from the stream, which
                # PyAV does not set: WebM would show the stored frame with square pixels
                sar = info.pixel_aspect
                self.warnings.append(
                    f"pixel aspect {sar.numerator}:{sar.denominator} cannot be stored in {fmt} with {codec} "
                    f"here: players will show {sw}x{sh} with square pixels (write .mp4 or .mkv to keep it)"
                )
        if info.mirror_matrix is not None:  # the input's own matrix: it turns and mirrors
            st.set_display_matrix(info.mirror_matrix)
        elif info.rotation:
            st.set_display_rotation(info.rotation)
        self._copy_meta(demuxer.video, st)
        return st

    def _color_setup(self, st: av.video.stream.VideoStream) -> dict | None:
        """Tags the output with the input's colour (`VideoInfo.color`) and returns how
        `write_frame` converts RGB to the encoder's YUV (None: the encoder takes RGB). Untagged,
        a BT.709 HD input came out converted by BT.601 with no tag, which players read as BT.709:
        saturated colours moved by up to 40 levels.

        An untagged input keeps the encoder's own conversion (BT.601, limited range, as it was
        read): our conversion in front of the encoder, same pixels, made x264's output bytes
        differ between runs on the untagged test clip (2 of 8 runs; the x264 reads of unwritten
        memory in README), where four tagged clips gave the same bytes in each of 62 runs."""
        space, rng, primaries, trc = self.info.color
        if not st.pix_fmt.startswith("yuv") or (space not in _SWS_MATRIX and not rng and primaries == trc == 2):
            return None
        ctx = st.codec_context
        ctx.color_primaries, ctx.color_trc = primaries, trc
        full = rng == int(ColorRange.JPEG)
        ctx.color_range = int(ColorRange.JPEG if full else ColorRange.MPEG)  # what the frames get
        # an input without a matrix swscale writes (RGB-coded, BT.2020 constant luminance, none
        # given beside tagged primaries) gets BT.709, said: untagged, a player guesses by size
        space = space if space in _SWS_MATRIX else 1
        ctx.colorspace = space
        return {
            "dst_colorspace": _SWS_MATRIX[space],
            "dst_color_range": ColorRange.JPEG if full else ColorRange.MPEG,
        }

    def _frame_step(self) -> int:
        rate = self.info.average_rate
        if rate:
            step = int(round(1 / (rate * self.info.time_base)))
            return max(1, step)
        return 1

    # --- writing ---------------------------------------------------------
    def write_frame(self, rgb: np.ndarray, meta: FrameMeta) -> None:
        """Encodes one upright RGB frame at its original pts."""
        pts = meta.pts
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = (self._last_pts + self._step) if self._last_pts is not None else 0
            self.stats.pts_fixed += 1
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(stored(rgb, self.info.rotation), format="rgb24")
        if self._to_yuv is not None:
            # one converter for the run, threaded as the encoder's own
            frame = self._reformatter.reformat(
                frame, format=self.video.pix_fmt, threads=self.video.codec_context.thread_count, **self._to_yuv
            )
        frame.pts = pts
        frame.time_base = self.info.time_base
        if self._palette is not None:
            self._through_palette(frame)
        else:
            self._mux(self.video.encode(frame))
        self.stats.frames += 1

    def _through_palette(self, frame: av.VideoFrame | None) -> None:
        """Pushes an RGB frame (None: the end) through the GIF palette graph and encodes
        whatever frames it gives back."""
        self._palette.push(frame)
        self._mux([p for f in _pulled(self._palette) for p in self.video.encode(f)])

    def write_packet(self, item: PacketItem) -> None:
        """Remuxes (or re-encodes) a packet of a non-video stream."""
        entry = self.map.get(item.stream_index)
        if entry is None:
            return
        how, ostream, decoder = entry
        if how == "copy":
            pkt = item.packet
            if pkt.dts is None and pkt.pts is None:
                self.stats.packets_dropped += 1
                return
            pkt.stream = ostream
            self._mux([pkt])
            return
        try:
            frames = decoder.decode(item.packet)
        except (av.error.FFmpegError, ValueError):
            self.stats.packets_dropped += 1
            return
        for f in frames:
            # the encoder's own clock, in samples: from the first frame's time (audio that
            # starts after the video stays in sync; never before 0), then counted, as decoded
            # pts may be missing later, and some muxers (ogg) refuse a packet without one
            start = self._audio_samples.get(item.stream_index)
            if start is None:
                first = f.pts * f.time_base if f.pts is not None and f.time_base else 0
                start = max(0, round(first * f.sample_rate))
            self._audio_samples[item.stream_index] = start + f.samples
            f.pts, f.time_base = start, Fraction(1, f.sample_rate)
            self._mux(ostream.encode(f))

    def _mux(self, packets) -> None:
        for p in packets:
            try:
                self.out.mux(p)
            except OSError as exc:
                if isinstance(exc, av.error.FFmpegError) and getattr(exc, "errno", None) not in (
                    errno.ENOSPC,
                    errno.EIO,
                ):
                    if p.stream is self.video:
                        raise CodecError(f"muxing video failed: {str(exc).splitlines()[0]}") from None
                    self.stats.packets_dropped += 1
                    continue
                raise _io_error(exc, self.name) from None

    def finish(self) -> None:
        """Flushes every encoder and closes the file."""
        try:
            if self._palette is not None:
                self._through_palette(None)  # its last frames
            self._mux(self.video.encode(None))
            for how, ostream, _ in self.map.values():
                if how == "reencode":
                    self._mux(ostream.encode(None))
            self.out.close()
        except OutputError:
            self.abort()
            raise
        except (OSError, av.error.FFmpegError) as exc:
            # a muxer may refuse a stream only when it writes the trailer
            self.abort()
            raise _io_error(exc, self.name) from None

    def abort(self) -> None:
        try:
            self.out.close()
        except Exception:  # noqa: BLE001 - closing a broken file must not mask the real error
            pass
