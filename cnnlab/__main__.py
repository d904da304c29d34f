"""`python -m cnnlab` == `cnnlab` (torchrun uses this: `torchrun --nproc_per_node 2 -m cnnlab pretrain`)."""

from cnnlab.cli import run

if __name__ == "__main__":
    run()
