"""ToyWorld: a small deterministic synthetic world written in real benchmark formats.

Data root layout (``ensure_toyworld`` returns the root)::

    toyworld_spec.json, DONE            the spec it was made from; completion marker
    images/toyworld_<group>_<id>.png    every still image; <id> = global integer image id
    annotations/coco_karpathy_{train,val,test}.json, coco_karpathy_{val,test}_gt.json
    annotations/flickr30k_{train,val,test}.json        second visual domain
    annotations/pretrain_web.json, pretrain_web_noise_labels.json, pretrain_human.json
    web_shards/NNNNN.tar(+_stats.json)  the web pairs as WebDataset shards (web_format='webdataset')
    annotations/vqa_{train,val,test}.json, answer_list.json          BLIP's VQA files
    vqa/v2_OpenEnded_mscoco_{train,val,test}_questions.json, v2_mscoco_{..}_annotations.json
    gqa/testdev_balanced_questions.json
    annotations/nocaps_val.json, nocaps_val_gt.json   NoCaps format, held-out colours
    annotations/grounding_test.json     object phrases and boxes of the test images
    msrvtt/msrvtt_test.jsonl, msrvtt/videos/video<i>.mp4   MSRVTT retrieval format
    msrvtt/msrvtt_qa_test.json, msrvtt_qa_motion_test.json MSRVTT-QA format (scene, motion)
    vocab/vocab.txt                     BERT WordPiece vocabulary of all texts

Run ``python -m tasks.toyworld --root DIR [--seed N] [--tiny]`` to generate one by hand.
Importing this package registers the ``'toyworld'`` data source (:mod:`.source`), so a
config's ``data_root='toyworld'`` names it.
"""
from .cache import default_root, ensure_toyworld
from .source import toyworld_data_root
from .spec import ToyWorldSpec
from .writer import generate_toyworld

__all__ = ['ToyWorldSpec', 'default_root', 'ensure_toyworld', 'generate_toyworld',
           'toyworld_data_root']
