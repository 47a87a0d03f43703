"""The base of the datasets built from a list of :class:`~medmtl.data.records.Record`."""

from __future__ import annotations

from torch.utils.data import Dataset

from medmtl.data.records import Record


class RecordDataset(Dataset):
    """A dataset of ``self.records``: its length, class labels and names come from the records
    (nothing is decoded)."""

    records: list[Record]

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> list[int | None]:
        """Class label of every sample (``None`` where unlabelled), e.g. for stratification."""
        return [record.label for record in self.records]

    def names(self) -> list[str]:
        return [record.name for record in self.records]
