"""MSRVTT-format clips, the retrieval ``msrvtt_test.jsonl`` and two video-QA files.

``msrvtt_test.jsonl`` holds one ``{"clip_name": "video<i>", "caption": ...}`` per line (as
BLIP's 1k-A test file); clips live in ``msrvtt/videos/<clip_name>.mp4``. The QA files follow
the official MSRVTT-QA release (``test_qa.json``): a list of ``{"video_id": i, "question",
"answer", "id"}``, clip ``video<i>``. ``msrvtt_qa_test.json`` asks the image VQA questions
(same grammar and answers) about each clip's objects and background, so an image-trained
VQA model can answer it zero-shot; ``msrvtt_qa_motion_test.json`` asks about motion
(directions), which no single frame shows.
"""
import pathlib

from .jsonio import write_json, write_jsonl
from .spec import ToyWorldSpec, random_stream
from .video import clip_caption, clip_motion_questions, clip_scene_questions, render_frames, \
    sample_clip, write_mp4

MSRVTT_FOLDER = 'msrvtt'


def _qa_records(pairs: list[tuple[int, str, str]]) -> list[dict]:
    """MSRVTT-QA records of ``(clip index, question, answer)``, ids in order."""
    return [{'video_id': video, 'question': question, 'answer': answer, 'id': number}
            for number, (video, question, answer) in enumerate(pairs)]


def write_msrvtt_files(spec: ToyWorldSpec, root: pathlib.Path) -> list[str]:
    """Write every clip and the annotation files; return their texts (vocabulary)."""
    video_folder = root / MSRVTT_FOLDER / 'videos'
    video_folder.mkdir(parents=True, exist_ok=True)
    captions, scene_pairs, motion_pairs = [], [], []
    for index in range(spec.n_videos):
        rng = random_stream(spec.seed, 'video', index)
        clip = sample_clip(rng)
        name = f'video{index}'
        write_mp4(video_folder / f'{name}.mp4',
                  render_frames(clip, spec.frames_per_video, spec.image_size), spec.video_fps)
        captions.append({'clip_name': name, 'caption': clip_caption(clip, rng)})
        motion_pairs += [(index, *pair)
                         for pair in clip_motion_questions(clip, rng, spec.questions_per_video)]
        scene_pairs += [(index, *pair) for pair in clip_scene_questions(
            clip, random_stream(spec.seed, 'video_qa', index), spec.questions_per_video)]
    write_jsonl(root / MSRVTT_FOLDER / 'msrvtt_test.jsonl', captions)
    write_json(root / MSRVTT_FOLDER / 'msrvtt_qa_test.json', _qa_records(scene_pairs))
    write_json(root / MSRVTT_FOLDER / 'msrvtt_qa_motion_test.json', _qa_records(motion_pairs))
    return [c['caption'] for c in captions] + [text for pairs in (scene_pairs, motion_pairs)
                                               for _, *texts in pairs for text in texts]
