# ToyWorld's VQA files (tasks/toyworld/vqa_files.py, gqa_files.py): official VQAv2 question +
# annotation pairs (500 train / 100 val / 100 test images, 5 questions each: colours, shapes,
# sizes, counts, yes/no, relations, background pattern; ten simulated annotators per
# question) and a GQA-format balanced test-dev file over the test images. Inherit after a
# ToyWorld dataset config (it sets data_root and image_size).
_base_ = ['./toyworld.py']

vqa_train_dataset = dict(
    type='VQAv2Dataset', data_root='${data_root}', split='train',
    question_file='vqa/v2_OpenEnded_mscoco_train_questions.json',
    annotation_file='vqa/v2_mscoco_train_annotations.json',
    image_pattern='images/toyworld_vqa_train_{image_id:06d}.png', image_size='${image_size}',
    # No augmentation (BLIP: crops of 0.5-1 of the area, flips, RandAugment): questions say
    # 'left of'/'right of' and count objects, which flips and crops falsify, and the tiny
    # model learned colours better without RandAugment (README, tiny ToyWorld models).
    augment=False)
vqa_test_dataset = dict(
    type='VQAv2Dataset', data_root='${data_root}', split='test',
    question_file='vqa/v2_OpenEnded_mscoco_test_questions.json',
    annotation_file='vqa/v2_mscoco_test_annotations.json',
    image_pattern='images/toyworld_vqa_test_{image_id:06d}.png', image_size='${image_size}',
    answer_list_file='annotations/answer_list.json')
gqa_test_dataset = dict(
    type='GQADataset', data_root='${data_root}', ann_file='gqa/testdev_balanced_questions.json',
    image_root='images', image_ext='.png', image_size='${image_size}',
    answer_list_file='annotations/answer_list.json')
# The majority-answer baselines count the VQAv2 training answers.
vqa_prior_file = 'vqa/v2_mscoco_train_annotations.json'
