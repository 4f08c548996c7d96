"""The constants the theorems need, measured on a trained network.

Ye & Farnia's bounds (Theorems 5, 6, Proposition 7) are stated for a chain network
f_W(x) = W_k φ(W_{k−1} φ(... φ(W_1 x))) with ||W_i||₂ ≤ B_i, ||x||₂ ≤ C, a 1-Lipschitz activation with
φ(0) = 0, and (for the smoothness constants) φ' 1-Lipschitz. From a trained network we measure:

- B_i: the ℓ2 operator norm of every linear layer, conv layers included (the conv as a linear map on
  its actual input shape). The theorems need ||W_i|| ≤ B_i, so B_i must be an UPPER bound:
  a Linear layer's norm is computed exactly (top eigenvalue of the smaller Gram matrix, float64);
  a conv layer's is bracketed: power iteration on AᵀA (Aᵀ through autograd's vjp) gives a value that
  approaches from below, and the Fourier bound of `conv_norm_upper` (Sedghi et al. 2019, applied to
  the full linear convolution) gives a certified value from above; B_i is the certified one, and
  both ends are recorded so the gap can be read. An eval-mode BatchNorm is the diagonal map
  γ/√(var+ε): its norm multiplies into the preceding layer's B_i.
  Max-pooling is 1-Lipschitz and adds no factor. Biases are ignored (the theory has none).
- C: the largest ||x||₂ over the training images, in the network's input space.
- L_emp, β_emp: local estimates at the trained weights — the largest per-sample ||∇_W ℓ|| on a batch
  and the top eigenvalue of the loss Hessian in W (Hessian-vector power iteration). These are lower
  estimates of the global constants the theorems assume; the certified ones come from Remark 4.

`assumption_gaps` lists where the network departs from the theorems' hypotheses (ReLU is not smooth,
max-pool, biases, residual connections), so a reader knows what a bound certifies.
"""
from __future__ import annotations

import math

import torch
from torch import nn

SMOOTH_ACTS = (nn.Tanh, nn.Softplus, nn.GELU)


@torch.no_grad()
def _normalized(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-30)


def operator_norm(fn, in_shape: tuple[int, ...], iters: int = 100, seed: int = 0, device="cpu",
                  dtype=torch.float64) -> float:
    """Largest singular value of the linear map `fn` on inputs of shape `in_shape`, by power iteration
    on AᵀA (Aᵀ via torch.func.vjp). Converges from below: 100 iterations came within 0.2% of the dense
    SVD on LeNet's first conv (a slight underestimate of B_i, so of the bound)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = _normalized(torch.randn(in_shape, generator=g, dtype=dtype)).to(device)
    est = 0.0
    for _ in range(iters):
        y, vjp = torch.func.vjp(fn, x)
        est = y.norm().item()
        (x,) = vjp(y)
        x = _normalized(x.detach())
    return est


def linear_norm(weight: torch.Tensor) -> float:
    """||W||₂ of a dense matrix, exactly: √λ_max of the smaller Gram matrix in float64 (0.15 s for
    LeNet's 1024×3136 layer, where a full SVD took 0.7 s; the two agree to 1e-13)."""
    W = weight.detach().double().flatten(1)
    G = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
    return float(torch.linalg.eigvalsh(G)[-1].clamp_min(0.0).sqrt())


def conv_norm_upper(weight: torch.Tensor, in_hw: tuple[int, int], stride=1, padding=0, dilation=1, groups: int = 1,
                    padding_mode: str = "zeros", max_elems: int = 1 << 24) -> float | None:
    """A certified upper bound on the ℓ2 operator norm of `conv2d(·, weight, stride, padding, dilation, groups)`
    on inputs of spatial size `in_hw`, with zero padding; None for other padding modes.

    Why it is an upper bound. Stride 1: a zero-padded convolution (any padding) is a coordinate
    selection (norm ≤ 1) of the FULL linear convolution, whose output is (H+k−1)×(W+k−1) with the
    dilated kernel size k. Embedding the input in an N×N grid with N ≥ H+k−1 makes that full
    convolution equal to a circular one, and a circular multi-channel convolution is block-diagonalised
    by the 2-D DFT: its singular values are those of the c_out×c_in matrices K̂(ω) at the N×N grid
    frequencies (Sedghi, Gupta & Long 2019, Thm. 6). So ||conv|| ≤ max_ω σ_max(K̂(ω)).
    Stride s > 1: zero-pad the input (an isometric embedding), split it into its s² polyphase
    components (a permutation of coordinates); the strided conv is then a stride-1 valid conv of those
    c_in·s² channels with the kernel K'[o, (c, a, b), p, q] = K[o, c, s·p+a, s·q+b], and the stride-1
    argument applies on the ⌈(H+2·pad)/s⌉ grid. This is much tighter than bounding by the stride-1
    conv (subsampling discards most of the output energy).
    The gap to the true norm is the boundary effect (a few % on 28×28 images; see the tests, which
    compare with a dense SVD). Grouped convs are block-diagonal: the max over groups. Frequencies are
    processed in chunks of at most `max_elems` matrix entries to bound memory; real kernels give
    conjugate-symmetric spectra, so half the grid (rfft2) suffices.
    """
    if padding_mode != "zeros":
        return None
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (dh, dw), (sh, sw) = pair(dilation), pair(stride)
    W = weight.detach().double()
    c_out, c_in_g, kh, kw = W.shape
    keh, kew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    K = W.new_zeros(c_out, c_in_g, keh, kew)
    K[:, :, ::dh, ::dw] = W
    h, w = in_hw
    if (sh, sw) != (1, 1):
        ph, pw = (0, 0) if isinstance(padding, str) else pair(padding)  # 'valid'; 'same' needs stride 1
        h, w = -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)
        qh, qw = -(-keh // sh), -(-kew // sw)
        K = nn.functional.pad(K, (0, qw * sw - kew, 0, qh * sh - keh))  # [o, c, qh·sh, qw·sw]
        K = K.view(c_out, c_in_g, qh, sh, qw, sw).permute(0, 1, 3, 5, 2, 4).reshape(c_out, c_in_g * sh * sw, qh, qw)
        c_in_g, keh, kew = c_in_g * sh * sw, qh, qw
    nh, nw = h + keh - 1, w + kew - 1
    spec = torch.fft.rfft2(K, s=(nh, nw))  # [c_out, c_in/g, nh, nw//2+1]
    spec = spec.view(groups, c_out // groups, c_in_g, nh, -1).permute(0, 3, 4, 1, 2).reshape(
        -1, c_out // groups, c_in_g)  # one small matrix per (group, frequency)
    step = max(1, max_elems // max(1, (c_out // groups) * c_in_g))
    return max(float(torch.linalg.svdvals(spec[i:i + step])[:, 0].max()) for i in range(0, len(spec), step))


def layer_norms(model: nn.Module, sample: torch.Tensor, iters: int = 100) -> list[dict]:
    """B_i of every Linear / Conv2d layer in forward order (BatchNorm folded into the layer before it).

    `sample`: one input [1, ...] on the model's device. Returns dicts with name, kind, in_shape and
    B (the value the bounds use: exact for Linear, the certified upper bound for Conv2d, or the power-
    iteration value where no certified one exists, flagged by `B_method`); conv records also carry
    B_power (power iteration, a lower estimate) and B_upper, bracketing the true norm. A BatchNorm after
    a layer multiplies all three by its largest |scale| (so B stays an upper bound of the composed map).
    """
    records: list[dict] = []
    order: list[tuple[str, nn.Module, tuple]] = []
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d)):
            hooks.append(mod.register_forward_hook(
                lambda m, inp, out, name=name: order.append((name, m, tuple(inp[0].shape)))))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(sample[:1])
    for h in hooks:
        h.remove()
    model.train(was_training)
    for name, mod, shape in order:
        dev = next(mod.parameters()).device
        if isinstance(mod, nn.Linear):
            records.append({"name": name, "kind": "linear", "B": linear_norm(mod.weight), "B_method": "exact",
                            "in_shape": list(shape)})
        elif isinstance(mod, nn.Conv2d):
            W = mod.weight.detach().double()

            def conv(x, W=W, mod=mod):
                return nn.functional.conv2d(x, W, None, mod.stride, mod.padding, mod.dilation, mod.groups)

            B_power = operator_norm(conv, (1,) + shape[1:], iters=iters, device=dev)
            B_upper = conv_norm_upper(W, shape[2:], mod.stride, mod.padding, mod.dilation, mod.groups,
                                      mod.padding_mode)
            records.append({"name": name, "kind": "conv2d", "B": B_power if B_upper is None else B_upper,
                            "B_method": "power-iteration" if B_upper is None else "fourier-upper",
                            "B_power": B_power, "B_upper": B_upper, "in_shape": list(shape)})
        else:  # eval BatchNorm: diagonal scale, folded into the previous linear layer
            scale = (mod.weight.detach() / torch.sqrt(mod.running_var + mod.eps)).abs().max().item()
            if records:
                records[-1]["B"] *= scale
                for key in ("B_power", "B_upper"):
                    if records[-1].get(key) is not None:
                        records[-1][key] *= scale
                records[-1]["bn_scale"] = scale
    return records


def input_norm_bound(x: torch.Tensor) -> float:
    """C = max_i ||x_i||₂ over the given inputs (network-input space)."""
    return x.flatten(1).norm(dim=1).max().item()


def empirical_lipschitz(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """max over the batch of the per-sample ||∇_W ℓ(W; x, y)||₂ (cross-entropy): a lower estimate of L."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        out = torch.func.functional_call(model, p, (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    grads = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    sq = sum(g.flatten(1).pow(2).sum(1) for g in grads.values())
    return sq.sqrt().max().item()


def empirical_smoothness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, iters: int = 20, seed: int = 0) -> float:
    """Top |eigenvalue| of the Hessian in W of the mean cross-entropy on (x, y), by HVP power
    iteration: a lower estimate of β at the trained weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = [torch.randn(p.shape, generator=g).to(p.device) for p in params]
    nv = math.sqrt(sum((t * t).sum().item() for t in v))
    v = [t / nv for t in v]
    lam = 0.0
    for _ in range(iters):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        lam = math.sqrt(sum((t * t).sum().item() for t in hv))
        v = [t.detach() / max(lam, 1e-30) for t in hv]
    return lam


def assumption_gaps(model: nn.Module) -> list[str]:
    """Where the network departs from the hypotheses of Theorems 5/6 and Proposition 7."""
    gaps = []
    mods = list(model.modules())
    if any(isinstance(m, nn.ReLU) for m in mods):
        gaps.append("ReLU: 1-Lipschitz but not smooth (φ' not Lipschitz): ρ and the SimpleGrad Lipschitz constant in W do not exist")
    if any(isinstance(m, nn.MaxPool2d) for m in mods):
        gaps.append("max-pooling: 1-Lipschitz but not smooth")
    if any(getattr(m, "bias", None) is not None for m in mods if isinstance(m, (nn.Linear, nn.Conv2d))):
        gaps.append("biases present (the theory's network has none)")
    if any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in mods):
        gaps.append("BatchNorm folded as a fixed diagonal map (eval mode)")
    if any(type(m).__name__ in ("BasicBlock", "WideBlock") for m in mods):
        gaps.append("residual connections: not a chain network, the product of B_i is not the theorem's Γ")
    if any(isinstance(m, nn.GELU) for m in mods):
        gaps.append("GELU: φ(0)=0 but Lipschitz constant ≈ 1.13 > 1")
    return gaps
