# NoCaps on ToyWorld: pre-train a tiny BLIP, fine-tune the captioner on the COCO-format
# train split, then caption COCO test and, zero-shot, the NoCaps-format val split, whose
# near- and out-domain images hold objects in colours no training caption names
# (tasks/toyworld/nocaps_files.py). One variant, one seed; a few minutes on a 2-core CPU.
_base_ = ['./ci_benchmark.py']  # the CI benchmark's tiny BLIP, data and schedule

nocaps_val_dataset = dict(type='NoCapsEvalDataset', data_root='${data_root}',
                          ann_file='annotations/nocaps_val.json',
                          gt_file='annotations/nocaps_val_gt.json', image_size='${image_size}')
eval_nocaps_stage = dict(
    next(stage for stage in _base_.experiment.stages if stage['name'] == 'eval_caption'),
    name='eval_nocaps', task='nocaps', dataset='${nocaps_val_dataset}',
    dataset_name='toyworld_nocaps', split='val')
experiment = dict(
    name='caption_nocaps_toyworld', variants=dict(_delete_=True, blip_tiny=dict()),
    stages=[*(stage for stage in _base_.experiment.stages if stage['name'] != 'eval_retrieval'),
            eval_nocaps_stage])
leaderboard = dict(
    title='Zero-shot NoCaps on ToyWorld (held-out colours)',
    description='A tiny BLIP fine-tuned on ToyWorld COCO-format captions, scored on COCO '
                'test and zero-shot on the NoCaps-format split; CIDEr per NoCaps domain, '
                'each computed on that domain\'s images. The paper rows are real NoCaps.',
    primary_metrics=[('caption', 'toyworld_coco', 'test', 'CIDEr')] + [
        ('nocaps', 'toyworld_nocaps', 'val', f'{subset}_{metric}')
        for subset in ('in-domain', 'near-domain', 'out-domain', 'overall')
        for metric in ('CIDEr', 'SPICE')],
    paper_reference='nocaps')
