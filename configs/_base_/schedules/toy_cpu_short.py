# The toy CPU schedule shortened for the small ToyWorld (2 + 2 epochs, batch 32).
_base_ = ['./toy_cpu.py']

pretrain_epochs = 2
finetune_epochs = 2
batch_size = 32
