"""MSRVTT-format clips, the retrieval ``msrvtt_test.jsonl`` and a video-QA file.

``msrvtt_test.jsonl`` holds one ``{"clip_name": "video<i>", "caption": ...}`` per line (as
BLIP's 1k-A test file); clips live in ``msrvtt/videos/<clip_name>.mp4``;
``msrvtt_qa_test.json`` is a list of ``{"video": clip_name, "question", "answer"}``.
"""
import pathlib

from .jsonio import write_json, write_jsonl
from .spec import ToyWorldSpec, random_stream
from .video import clip_caption, clip_questions, render_frames, sample_clip, write_mp4

MSRVTT_FOLDER = 'msrvtt'


def write_msrvtt_files(spec: ToyWorldSpec, root: pathlib.Path) -> list[str]:
    """Write every clip and both annotation files; return their texts (vocabulary)."""
    video_folder = root / MSRVTT_FOLDER / 'videos'
    video_folder.mkdir(parents=True, exist_ok=True)
    captions, questions = [], []
    for index in range(spec.n_videos):
        rng = random_stream(spec.seed, 'video', index)
        clip = sample_clip(rng)
        name = f'video{index}'
        write_mp4(video_folder / f'{name}.mp4',
                  render_frames(clip, spec.frames_per_video, spec.image_size), spec.video_fps)
        captions.append({'clip_name': name, 'caption': clip_caption(clip, rng)})
        questions += [{'video': name, 'question': question, 'answer': answer}
                      for question, answer in clip_questions(clip, rng,
                                                             spec.questions_per_video)]
    write_jsonl(root / MSRVTT_FOLDER / 'msrvtt_test.jsonl', captions)
    write_json(root / MSRVTT_FOLDER / 'msrvtt_qa_test.json', questions)
    return [c['caption'] for c in captions] + [t for q in questions
                                               for t in (q['question'], q['answer'])]
