"""The training benchmark times as many batches as it divides by."""

from benchmarks.training import epochs


class ThreeABatch:
    """A case whose epoch holds three batches, named (epoch, index)."""

    def epoch(self, number, seed):
        return iter([(number, i) for i in range(3)])


def test_epochs_runs_on_into_the_next_epochs_until_the_count():
    batches = list(epochs(ThreeABatch(), seed=0, count=7))
    assert batches == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
