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
  γ/√(var+ε): its norm multiplies into the preceding layer's B_i (into the next layer's when it comes
  before every layer, e.g. an input normalisation). Max-pooling is √(coverage)-Lipschitz in ℓ2, where
  coverage = the largest number of windows one input pixel falls in (1 for non-overlapping windows,
  4 for MaxPool2d(3, 2)): `window_coverage`, proof at `maxpool_lipschitz`; it multiplies into the
  preceding layer. Biases are ignored (the theory has none).
- gain_i: the theorems' L, β and L′ are constants in the parameters SGD updates. For a Linear layer that
  is W_i itself; for a conv it is the kernel K_i, and ‖A(ΔK)‖₂ ≤ √(coverage)·‖ΔK‖_F (`conv_param_gain`),
  so derivatives in K are up to that factor larger than the operator-norm bounds say. A fixed map folded
  into layer i (BatchNorm, max-pool) multiplies its gain too: the theorems then see W̃_i = D·W_i·D′, and
  ‖ΔW̃_i‖ ≤ ‖D‖‖D′‖‖ΔW_i‖. `empirical.nets.certify` turns the gains into the constants.
- C: the largest ||x||₂ over the training images, in the network's input space.
- L_emp, β_emp: local estimates at the trained weights — the largest per-sample ||∇_W ℓ|| on a batch
  and the top eigenvalue of the loss Hessian in W (Hessian-vector power iteration). These are lower
  estimates of the global constants the theorems assume; Remark 4's come from `empirical.nets.certify`.

`assumption_gaps` lists where the network departs from the theorems' hypotheses (ReLU is not smooth,
max-pool, biases, residual connections, φ(0) ≠ 0), so a reader knows what a bound certifies.
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


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def window_coverage(in_hw: tuple[int, int], out_hw: tuple[int, int], kernel, stride=1, padding=0,
                    dilation=1) -> int:
    """The largest number of (output position, kernel offset) pairs that read one input pixel.

    Input index i is read by output u at offset q when s·u + d·q − pad = i; counted per spatial dimension
    (the 2-D count is the product) over the layer's actual output size `out_hw`, so ceil_mode and the
    padding are exact. Stride 1: the kernel area k_h·k_w (away from the border); stride s: at most
    ⌈k·gcd(s, d)/s⌉ per dimension (the solutions q of d·q ≡ i mod s are spaced s/gcd(s, d) apart).
    """
    total = 1
    for n, out, k, s, d, p in zip(in_hw, out_hw, _pair(kernel), _pair(stride), _pair(dilation), _pair(padding)):
        cnt = [0] * n
        for u in range(out):
            for q in range(k):
                i = s * u + d * q - p
                if 0 <= i < n:
                    cnt[i] += 1
        total *= max(cnt, default=0)
    return total


def _conv_padding(mod: nn.Conv2d) -> tuple[int, int]:
    if mod.padding == "valid":
        return (0, 0)
    if mod.padding == "same":  # PyTorch pads d(k−1) in total, the smaller half on the left/top
        return tuple(d * (k - 1) // 2 for d, k in zip(_pair(mod.dilation), _pair(mod.kernel_size)))
    return _pair(mod.padding)


def conv_param_gain(mod: nn.Conv2d, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> float:
    """γ with ‖A(ΔK)h‖₂ ≤ γ‖ΔK‖_F‖h‖₂ for the conv's linear map A(·) on inputs of spatial size in_hw.

    Proof: output channel o at position u is ⟨ΔK_o, P_u(h)⟩ with P_u(h) the input patch u reads (zeros
    outside the image), so ‖A(ΔK)h‖² = Σ_o ‖P ΔK_o‖² ≤ ‖ΔK‖_F² σ_max(P)² ≤ ‖ΔK‖_F² ‖P‖_F², and
    ‖P‖_F² = Σ_u ‖P_u(h)‖² = Σ_pixels coverage(pixel)·h² ≤ max coverage·‖h‖². So γ = √(max coverage)
    (`window_coverage`): √(k_h·k_w) at stride 1, ≈ √(k_h k_w)/s at stride s. Groups read a subset of
    the channels: the same bound. Sharp for large images (a constant kernel on a constant input).
    """
    return math.sqrt(window_coverage(in_hw, out_hw, mod.kernel_size, mod.stride, _conv_padding(mod), mod.dilation))


def maxpool_lipschitz(mod: nn.MaxPool2d, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> float:
    """The ℓ2 Lipschitz constant of max-pooling: √(max coverage).

    ‖mp(x) − mp(y)‖² = Σ_windows |max_w x − max_w y|² ≤ Σ_w max_{i∈w} |x_i − y_i|² ≤ Σ_w Σ_{i∈w} |x_i − y_i|²
    = Σ_i coverage(i)|x_i − y_i|² ≤ max coverage·‖x − y‖². Attained by y = 0, x = a unit spike on a
    pixel of maximal coverage (every window it is in outputs 1): the constant is exact, 1 for
    non-overlapping windows, 2 for MaxPool2d(3, 2).
    """
    return math.sqrt(window_coverage(in_hw, out_hw, mod.kernel_size, mod.stride, mod.padding, mod.dilation))


def layer_norms(model: nn.Module, sample: torch.Tensor, iters: int = 100) -> list[dict]:
    """B_i of every Linear / Conv2d layer in forward order, with the fixed maps around them folded in.

    `sample`: one input [1, ...] on the model's device. Returns dicts with name, kind, in_shape, B (the
    value the bounds use: exact for Linear, the certified upper bound for Conv2d, or the power-iteration
    value where no certified one exists, flagged by `B_method`) and gain (the factor from the layer's
    operator norm to its parameters, see the module docstring); conv records also carry B_power (power
    iteration, a lower estimate) and B_upper, bracketing the true norm. A BatchNorm (scale s = its
    largest |γ/√(var+ε)|) or a max-pool (its Lipschitz constant λ) after a layer multiplies that layer's
    B, B_power, B_upper and gain; one before every layer multiplies the first layer's (an input BatchNorm
    scales x: ‖W_1 D x‖ ≤ ‖W_1‖ s ‖x‖). Folded factors are listed in `folded`.
    """
    records: list[dict] = []
    order: list[tuple[str, nn.Module, tuple, tuple]] = []
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.MaxPool2d)):
            hooks.append(mod.register_forward_hook(
                lambda m, inp, out, name=name: order.append((name, m, tuple(inp[0].shape), tuple(out.shape)))))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(sample[:1])
    for h in hooks:
        h.remove()
    model.train(was_training)
    pending: list[tuple[str, str, float]] = []  # fixed maps met before the first layer

    def fold(rec: dict, what: str, name: str, factor: float) -> None:
        for key in ("B", "B_power", "B_upper", "gain"):
            if rec.get(key) is not None:
                rec[key] *= factor
        rec.setdefault("folded", []).append({"kind": what, "name": name, "factor": factor})
        if what == "batchnorm":
            rec["bn_scale"] = rec.get("bn_scale", 1.0) * factor

    for name, mod, shape, out_shape in order:
        if isinstance(mod, nn.Linear):
            records.append({"name": name, "kind": "linear", "B": linear_norm(mod.weight), "B_method": "exact",
                            "gain": 1.0, "in_shape": list(shape)})
        elif isinstance(mod, nn.Conv2d):
            dev = mod.weight.device
            W = mod.weight.detach().double()

            def conv(x, W=W, mod=mod):
                return nn.functional.conv2d(x, W, None, mod.stride, mod.padding, mod.dilation, mod.groups)

            B_power = operator_norm(conv, (1,) + shape[1:], iters=iters, device=dev)
            B_upper = conv_norm_upper(W, shape[2:], mod.stride, mod.padding, mod.dilation, mod.groups,
                                      mod.padding_mode)
            records.append({"name": name, "kind": "conv2d", "B": B_power if B_upper is None else B_upper,
                            "B_method": "power-iteration" if B_upper is None else "fourier-upper",
                            "B_power": B_power, "B_upper": B_upper,
                            "gain": conv_param_gain(mod, shape[2:], out_shape[2:]),
                            "kernel": list(_pair(mod.kernel_size)), "in_shape": list(shape)})
        else:
            if isinstance(mod, nn.MaxPool2d):
                what, factor = "maxpool", maxpool_lipschitz(mod, shape[2:], out_shape[2:])
            else:  # eval BatchNorm: the diagonal map γ/√(var+ε)
                what = "batchnorm"
                gamma = mod.weight.detach() if mod.weight is not None else torch.ones(())
                var = mod.running_var if mod.running_var is not None else torch.zeros(())  # no stats: batch-dependent
                factor = (gamma / torch.sqrt(var + mod.eps)).abs().max().item()
            if records:
                fold(records[-1], what, name, factor)
            else:
                pending.append((what, name, factor))
        if pending and records:
            for what, pname, factor in pending:
                fold(records[-1], what, pname, factor)
            pending = []
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
        gaps.append("max-pooling: Lipschitz (folded into B) but not smooth")
    if any(getattr(m, "bias", None) is not None for m in mods if isinstance(m, (nn.Linear, nn.Conv2d))):
        gaps.append("biases present (the theory's network has none)")
    if any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in mods):
        gaps.append("BatchNorm folded as a fixed diagonal map (eval mode)")
    if any(type(m).__name__ in ("BasicBlock", "WideBlock") for m in mods):
        gaps.append("residual connections: not a chain network, the product of B_i is not the theorem's Γ")
    if any(isinstance(m, nn.Softplus) for m in mods):
        gaps.append("softplus: φ(0) = ln 2 ≠ 0, so ‖h_i‖ ≤ B_i‖h_(i−1)‖ fails and L, β, L′ from Γ do not hold")
    if any(isinstance(m, nn.GELU) for m in mods):
        gaps.append("GELU: φ(0)=0 but Lipschitz constant ≈ 1.13 > 1")
    return gaps
