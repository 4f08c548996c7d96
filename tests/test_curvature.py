"""Input-Hessian norm against closed forms and a dense Hessian."""
import torch

from empirical.measures.curvature import input_hessian_norm


class Quadratic(torch.nn.Module):
    """f_k(x) = ½ xᵀ A_k x: the Hessian of logit k is A_k exactly."""

    def __init__(self, A):
        super().__init__()
        self.A = A

    def forward(self, x):
        return 0.5 * torch.einsum("ni,kij,nj->nk", x, self.A, x)


def test_quadratic_model_closed_form():
    torch.manual_seed(0)
    M = torch.randn(3, 5, 5, dtype=torch.float64)
    A = M + M.transpose(1, 2)
    x = torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1])
    est = input_hessian_norm(Quadratic(A), x, t, iters=300)
    exact = torch.linalg.eigvalsh(A).abs().max(dim=1).values[t]
    assert torch.allclose(est, exact, rtol=1e-6)


def test_smooth_net_against_dense_hessian():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    t = torch.tensor([2, 0, 1])
    est = input_hessian_norm(net, x, t, iters=500)
    for i in range(3):
        H = torch.autograd.functional.hessian(lambda z: net(z.unsqueeze(0))[0, t[i]], x[i])
        assert abs(est[i].item() - torch.linalg.eigvalsh(H).abs().max().item()) < 1e-6 * max(1.0, est[i].item())


def test_relu_net_is_zero():
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    assert torch.all(input_hessian_norm(net, torch.randn(3, 4), torch.tensor([0, 1, 0]), iters=3) == 0)
