"""End to end through mmengine: train + validate a tiny captioner, and --resume exactly."""
import torch

CONFIG = 'configs/caption_toyworld_tiny.py'


def load_weights(path):
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    return checkpoint['state_dict']


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(run_cli, tmp_path):
    straight = tmp_path / 'straight'
    interrupted = tmp_path / 'interrupted'
    run_cli(CONFIG, '--work-dir', str(straight))
    # Stop after epoch 1 (same schedule), then resume to epoch 2.
    run_cli(CONFIG, '--work-dir', str(interrupted), cfg_options=['train_cfg.max_epochs=1'])
    assert (interrupted / 'epoch_1.pth').exists() and not (interrupted / 'epoch_2.pth').exists()
    resumed = run_cli(CONFIG, '--work-dir', str(interrupted), '--resume')
    assert 'resumed epoch: 1' in (resumed.stdout + resumed.stderr).lower()

    expected = load_weights(straight / 'epoch_2.pth')
    actual = load_weights(interrupted / 'epoch_2.pth')
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_training_validates_and_keeps_the_best_checkpoint(run_cli, tmp_path):
    done = run_cli(CONFIG, '--work-dir', str(tmp_path))
    log = done.stdout + done.stderr
    assert 'coco_caption/CIDEr+BLEU-4' in log
    assert list(tmp_path.glob('best_coco_caption_CIDEr+BLEU-4_epoch_*.pth'))


def test_retrieval_finetuning_validates_by_the_protocol_and_keeps_the_best(run_cli, tmp_path):
    done = run_cli('configs/retrieval_toyworld_tiny.py', '--work-dir', str(tmp_path))
    log = done.stdout + done.stderr
    assert 'retrieval/R_mean' in log and 'retrieval ITM re-ranking' in log
    best = list(tmp_path.glob('best_retrieval_R_mean_epoch_*.pth'))
    assert len(best) == 1
    state = load_weights(best[0])
    assert 'itm_head.weight' in state and not any(k.startswith('text_decoder.') for k in state)
