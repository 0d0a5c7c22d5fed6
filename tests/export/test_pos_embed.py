"""The exportable position-embedding resampling gives the official DINOv2 numbers at every grid, and exported graphs
keep the grid symbolic instead of freezing the export-time scale factor."""

from __future__ import annotations

import pytest
import torch

from anydepth.models.encoder import _inverse_scale, interpolate_pos_embed, resample_pos_embed

from helpers import max_rel_diff

M = 37  # native DINOv2 grid
GRIDS = [(h, w) for h in (1, 5, 20, 26, 36, 37, 38, 74, 101) for w in (2, 27, 37, 39, 128)]  # square and not


@pytest.mark.parametrize("mode", ["dinov2", "size"])
def test_resampling_equals_the_official_interpolation_at_many_grids(mode: str) -> None:
    pos = torch.randn(1, 1 + M * M, 16)
    for grid in GRIDS:
        official = interpolate_pos_embed(pos, *grid, mode=mode)
        ours = resample_pos_embed(pos, *grid, mode=mode)
        assert ours.shape == official.shape == (1, 1 + grid[0] * grid[1], 16)
        assert max_rel_diff(official, ours) <= 1e-5, grid


def test_native_grid_is_the_identity_and_its_neighbours_are_not() -> None:
    pos = torch.randn(1, 1 + M * M, 8)
    assert torch.equal(resample_pos_embed(pos, M, M), pos)
    # one native side alone is resampled, as officially, by the scale factor (37 + 0.1) / 37
    torch.testing.assert_close(resample_pos_embed(pos, M, 52), interpolate_pos_embed(pos, M, 52), rtol=0, atol=1e-5)
    assert (resample_pos_embed(pos, M, 52)[:, 1:].reshape(M, 52, 8)[:, :M] - pos[:, 1:].reshape(M, M, 8)).abs().max()


def test_inverse_scale_is_the_fp32_value_pytorch_derives_from_the_scale_factor() -> None:
    for grid in range(1, 3000):
        expected = torch.tensor(1.0 / ((grid + 0.1) / M), dtype=torch.float32)
        assert _inverse_scale(grid, M, 0.1) == expected, grid


class PosEmbed(torch.nn.Module):
    """The encoder's resampling step alone: grid from the input's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = torch.nn.Parameter(torch.randn(1, 1 + M * M, 8))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return interpolate_pos_embed(self.pos_embed, grid.shape[0], grid.shape[1])


def test_an_exported_graph_resamples_officially_at_sizes_other_than_the_traced_one() -> None:
    module = PosEmbed()
    rows, cols = torch.export.Dim("rows", min=1, max=512), torch.export.Dim("cols", min=1, max=512)
    program = torch.export.export(module, (torch.zeros(20, 27),), dynamic_shapes=({0: rows, 1: cols},)).module()
    for grid in ((20, 27), (37, 37), (37, 50), (64, 9)):
        with torch.no_grad():
            assert max_rel_diff(interpolate_pos_embed(module.pos_embed, *grid), program(torch.zeros(grid))) <= 1e-5
