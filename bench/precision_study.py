#!/usr/bin/env python3
"""Precision study for issue 7: which staged-network recipe generalises best
on hartmann3, measured in Python (float64, one thread) before porting it to
the C++ trainer (worker/model/trainer.cc).

It mirrors the trainer: inputs standardised by the training rows, stage 1 on
standardised targets, stage k on the residual divided by its RMS; each stage
runs full-batch Adam (warm-up, cosine decay), L-BFGS (strong Wolfe, history
50, chunks of 10 iterations) and optionally an L-BFGS phase on mean
(|e|/e0)^p; the weights with the smallest validation max abs error are kept.
Rows: train.csv split 80/20 into training and validation exactly as the
controller and trainer_bench split it (SplitMix64, seed 1); every
number in the table is on holdout.csv. With --final a configuration is also
retrained on training+validation rows with the same iteration counts (no
selection; the last weights are kept).

  python3 bench/precision_study.py                 # every configuration
  python3 bench/precision_study.py s1_tanh64x3 ... # some of them
  python3 bench/precision_study.py --list
  python3 bench/precision_study.py kernel          # the kernel yardstick only

Stage results are cached under --cache (default /tmp/precision_study) so
that later-stage configurations reuse an identical earlier stage; delete the
cache to regenerate everything. Fixed seeds: two runs give the same table.
"""
import argparse, math, os, sys, time
import numpy as np
import torch

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

TASK = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    '..', '..', 'shared', 'tasks', 'hartmann3')


def split_mix64(x):
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def is_validation_row(seed, fraction, row):
    """common/validation_split.cc's rule, so the rows are the trainer's."""
    return split_mix64(seed + row) < math.ceil(math.ldexp(fraction, 64))


def load(task):
    tr = np.loadtxt(os.path.join(task, 'train.csv'), delimiter=',', skiprows=1)
    ho = np.loadtxt(os.path.join(task, 'holdout.csv'), delimiter=',', skiprows=1)
    val = np.array([is_validation_row(1, 0.2, i) for i in range(len(tr))])
    t = torch.tensor
    return dict(train=(t(tr[~val, :3]), t(tr[~val, 3])),
                val=(t(tr[val, :3]), t(tr[val, 3])),
                all=(t(tr[:, :3]), t(tr[:, 3])),
                holdout=(t(ho[:, :3]), t(ho[:, 3])))


class Sine(torch.nn.Module):
    def forward(self, x):
        return torch.sin(x)


class Residual(torch.nn.Module):
    """x + act(W x + b): DenseLayer.residual, as the trainer's sine stages."""
    def __init__(self, lin, act):
        super().__init__()
        self.lin, self.act = lin, act

    def forward(self, x):
        return x + self.act(self.lin(x))


class Gauss(torch.nn.Module):
    """exp(-x^2): the Gaussian activation of coordinate MLPs (Ramasinghe &
    Lucey, 2022), a bump instead of a wave."""
    def forward(self, x):
        return torch.exp(-x * x)


ACT = {'tanh': torch.nn.Tanh, 'silu': torch.nn.SiLU, 'gelu': torch.nn.GELU,
       'sine': Sine, 'gauss': Gauss}


def build(spec, seed):
    """spec: dict(act, width, depth, omega (sine first layer), ...)."""
    torch.manual_seed(seed)
    layers, d = [], 3
    for i in range(spec['depth']):
        lin = torch.nn.Linear(d, spec['width'])
        if spec['act'] == 'sine' and spec.get('glorot'):  # as the gauss/tanh layers below
            torch.nn.init.xavier_uniform_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        elif spec['act'] == 'sine':  # SIREN initialisation, omega_0 = omega
            with torch.no_grad():
                if i == 0:
                    lin.weight.uniform_(-spec['omega'] / d, spec['omega'] / d)
                    lin.bias.uniform_(-math.pi, math.pi)
                else:
                    b = math.sqrt(6 / d)
                    lin.weight.uniform_(-b, b)
        elif spec['act'] == 'gauss':  # Glorot-uniform times omega, bumps spread over the inputs
            torch.nn.init.xavier_uniform_(lin.weight)
            with torch.no_grad():
                if i == 0:
                    lin.weight.mul_(spec['omega'])
                    lin.bias.uniform_(-spec['omega'], spec['omega'])
                else:
                    lin.bias.zero_()
        else:  # Glorot-uniform, zero bias, as the trainer
            torch.nn.init.xavier_uniform_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        if i > 0 and spec.get('residual'):
            layers.append(Residual(lin, ACT[spec['act']]()))
        else:
            layers += [lin, ACT[spec['act']]()]
        d = spec['width']
    out = torch.nn.Linear(d, 1)
    torch.nn.init.xavier_uniform_(out.weight)
    torch.nn.init.zeros_(out.bias)
    return torch.nn.Sequential(*layers, out)


def params(net):
    return sum(p.numel() for p in net.parameters())


def train_stage(spec, x, t, xv, tv, tscale, seed, select=True):
    """Trains one stage on standardised inputs x and scaled targets t; the
    selection error is max |net(xv) - tv| * tscale. Returns the net."""
    net = build(spec, seed)
    wd = spec.get('l2', 0.0)
    best = [math.inf, None]

    def check():
        if not select:
            return
        with torch.no_grad():
            e = (net(xv).squeeze(-1) - tv).abs().max().item() * tscale
        if e < best[0]:
            best[0] = e
            best[1] = [p.detach().clone() for p in net.parameters()]

    def restore():
        if best[1] is not None:
            with torch.no_grad():
                for p, b in zip(net.parameters(), best[1]):
                    p.copy_(b)

    def loss_fn(power=2, scale=1.0):
        e = (net(x).squeeze(-1) - t) / scale
        loss = (e ** power).mean()
        if wd:
            loss = loss + wd * sum((p ** 2).sum() for n, p in
                                   net.named_parameters() if 'weight' in n)
        return loss

    steps, warm, lr = spec.get('adam', 0), spec.get('warmup', 0), spec.get('lr', 1e-3)
    if steps:
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for s in range(steps):
            f = (s + 1) / warm if s < warm else \
                0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))
            for g in opt.param_groups:
                g['lr'] = lr * f
            opt.zero_grad()
            loss_fn().backward()
            opt.step()
            if s % 50 == 49:
                check()
    check()

    def lbfgs(iters, power, scale):
        if select:
            restore()
        opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=10, max_eval=250,
                                tolerance_grad=1e-14, tolerance_change=1e-18,
                                history_size=50, line_search_fn='strong_wolfe')

        def closure():
            opt.zero_grad()
            l = loss_fn(power, scale)
            l.backward()
            return l
        prev, restarts = None, 0
        for _ in range(0, iters, 10):
            opt.step(closure)
            with torch.no_grad():
                l = loss_fn(power, scale).item()
            if not math.isfinite(l):
                break
            check()
            if l == prev:
                restarts += 1
                if restarts > 2:
                    break
                opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=10, max_eval=250,
                                        tolerance_grad=1e-14, tolerance_change=1e-18,
                                        history_size=50, line_search_fn='strong_wolfe')
            prev = l

    lbfgs(spec.get('lbfgs', 0), 2, 1.0)
    if spec.get('maxerr', 0):
        if select:
            restore()
        with torch.no_grad():
            e0 = (net(x).squeeze(-1) - t).abs().max().item()
        lbfgs(spec['maxerr'], spec.get('p', 8), e0)
    if select:
        restore()
    return net


# Configurations: name -> list of stage specs. Stage 1 is trained on
# standardised targets, stage k > 1 on the residual over its RMS.
S1_BASE = dict(act='tanh', width=64, depth=3, adam=1500, warmup=100, lr=1e-2,
               lbfgs=4000, maxerr=500, p=8)
SINE2 = dict(act='sine', width=96, depth=2, omega=10, residual=True, adam=1000, warmup=100,
             lr=1e-3, lbfgs=4000, maxerr=1000, p=16)
CONFIGS = {}


def cfg(name, *stages, note=''):
    CONFIGS[name] = (list(stages), note)


cfg('s1_tanh64x3_base', S1_BASE, note='the trainer\'s current stage 1 (bench/staged_hartmann3_wide)')
SHORT2 = dict(SINE2, adam=500, lbfgs=2000, maxerr=500)
for w in (10, 5, 3, 1):
    cfg('base+sine96_omega%g' % w, S1_BASE, dict(SHORT2, omega=w),
        note='stage 2: 96 sine -> 96 sine (residual), SIREN omega_0=%g, 500 Adam, 2000 L-BFGS, '
        '500 max-error (p=16)' % w)
SHORT3 = dict(SHORT2, width=64)
for w in (10, 5):
    cfg('base+sine96_omega%g+sine64_omega%g' % (w, w), S1_BASE,
        dict(SHORT2, omega=w), dict(SHORT3, omega=w),
        note='stages 2 and 3 sine, omega_0=%g; stage 3 64 wide' % w)
S1_SILU = dict(S1_BASE, act='silu')
for l2 in (0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5):
    cfg('silu+sine96_omega5_l2_%g' % l2, S1_SILU, dict(SHORT2, omega=5, l2=l2),
        note='stage 1 SiLU; stage 2 as base+sine96_omega5 with an L2 penalty '
        '%g * sum(W^2) in every phase (Adam, L-BFGS, max-error)' % l2)

for w in (1, 3):
    cfg('silu+gauss96_omega%g' % w, S1_SILU, dict(SHORT2, act='gauss', omega=w),
        note='stage 1 SiLU; stage 2 as base+sine96_omega5 but exp(-x^2) units, first layer '
        'Glorot times %g with biases U(-%g, %g)' % (w, w, w))
cfg('silu64x3', S1_SILU, note='stage 1 alone: 64x3 SiLU')
S1_GAUSS = dict(S1_BASE, act='gauss', omega=1)
cfg('gauss64x3', S1_GAUSS,
    note='stage 1 alone with exp(-x^2) units (Glorot weights, first-layer biases U(-1, 1))')
cfg('gauss+sine96_omega5', S1_GAUSS, dict(SHORT2, omega=5),
    note='stage 1 gauss64x3; stage 2 as base+sine96_omega5')
cfg('gauss+sine96_glorot', S1_GAUSS, dict(SHORT2, glorot=True),
    note='stage 1 gauss64x3; stage 2 as base+sine96_omega5 but started with Glorot weights and '
    'zero biases (how the ADD_STAGE morphism started a sine stage until 2026-12-07)')
cfg('gauss+gauss96_omega1', S1_GAUSS, dict(SHORT2, act='gauss', omega=1),
    note='stage 1 gauss64x3; stage 2 as silu+gauss96_omega1')


def inside_mask(x, margin):
    """Holdout rows at least margin (a fraction of each input's range) away
    from every face of the box, as bench/ensemble.py --margins."""
    lo, hi = x.min(0).values, x.max(0).values
    return (torch.minimum(x - lo, hi - x) / (hi - lo)).min(1).values >= margin


def run(name, data, cache, final=False, margin=0.0):
    stages, note = CONFIGS[name]
    xtr, ytr = data['all' if final else 'train']
    xv, yv = data['val']
    xh, yh = data['holdout']
    xm, xs = xtr.mean(0), xtr.std(0)
    ym, ys = ytr.mean(), ytr.std()
    z = lambda a: (a - xm) / xs
    pred_tr, pred_v, pred_h = torch.full_like(ytr, ym), torch.full_like(yv, ym), torch.full_like(yh, ym)
    rows, cpu, total_params = [], 0.0, 0
    for k, spec in enumerate(stages):
        # The rows are part of the key: SplitMix64 split, seed 1, 80/20.
        key = repr((stages[:k + 1], final, 'splitmix64', 1, 0.2))
        path = os.path.join(cache, '%016x.pt' % (hash_key(key)))
        r = ytr - pred_tr
        scale = ys if k == 0 else r.pow(2).mean().sqrt()
        net = build(spec, 1000 + k)
        if os.path.exists(path):
            state, c = torch.load(path)
            net.load_state_dict(state)
        else:
            c0 = time.process_time()
            net = train_stage(spec, z(xtr), r / scale, z(xv), (yv - pred_v) / scale,
                              scale.item(), 1000 + k, select=not final)
            c = time.process_time() - c0
            torch.save((net.state_dict(), c), path)
        cpu += c
        total_params += params(net)
        with torch.no_grad():
            pred_tr = pred_tr + net(z(xtr)).squeeze(-1) * scale
            pred_v = pred_v + net(z(xv)).squeeze(-1) * scale
            pred_h = pred_h + net(z(xh)).squeeze(-1) * scale
        eh = (pred_h - yh).abs()
        inner = eh[inside_mask(xh, margin)].max().item() if margin else math.nan
        rows.append((name + (' [final]' if final else ''), k + 1, total_params,
                     eh.max().item(), (eh < 1e-5).double().mean().item(),
                     (eh < 1e-6).double().mean().item(),
                     eh.pow(2).mean().sqrt().item(),
                     (pred_v - yv).abs().max().item(),
                     (pred_tr - ytr).abs().max().item(), cpu, inner))
    return rows, note


def kernel_reference(data, rows='train', eps=3.0, nugget=1e-12):
    """Not a network: the Gaussian-kernel interpolant exp(-(eps r)^2) of the
    training rows (exact float64 solve), a yardstick for how well the rows
    pin hartmann3 down between them."""
    x, y = data[rows]
    xh, yh = data['holdout']
    c0 = time.process_time()
    k = torch.exp(-(eps * torch.cdist(x, x)) ** 2)
    k.diagonal().add_(nugget)
    a = torch.linalg.solve(k, y - y.mean())
    e = (torch.exp(-(eps * torch.cdist(xh, x)) ** 2) @ a + y.mean() - yh).abs()
    return ('Gaussian-kernel interpolant (eps %g) of the %s rows, not a network'
            % (eps, 'training' if rows == 'train' else 'training+validation'), 0,
            len(y), e.max().item(), (e < 1e-5).double().mean().item(),
            (e < 1e-6).double().mean().item(), e.pow(2).mean().sqrt().item(),
            math.nan, math.nan, time.process_time() - c0)


def hash_key(s):
    import hashlib
    return int(hashlib.sha256(s.encode()).hexdigest()[:16], 16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('names', nargs='*')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--final', action='store_true',
                    help='also retrain on training+validation rows')
    ap.add_argument('--task', default=TASK)
    ap.add_argument('--cache', default='/tmp/precision_study')
    ap.add_argument('--margin', type=float, default=0.0,
                    help='also the holdout max over the rows at least this far '
                    '(a fraction of each input range) from the faces')
    a = ap.parse_args()
    if a.list:
        for n, (_, note) in CONFIGS.items():
            print(n, '-', note)
        return
    os.makedirs(a.cache, exist_ok=True)
    data = load(a.task)
    extra = ' holdout max >= %g from the faces |' % a.margin if a.margin else ''
    print('| configuration | stages | parameters | holdout max abs error | within 1e-5 | within 1e-6 | holdout RMSE | validation max | training max | CPU s |' + extra)
    print('|---|---|---|---|---|---|---|---|---|---|' + ('---|' if a.margin else ''))
    if not a.names or 'kernel' in a.names:
        for rows in ('train', 'all'):
            r = kernel_reference(data, rows)
            print('| %s | - | %s coefficients | %.2e | %.1f%% | %.2f%% | %.1e | - | - | %.0f |' % (
                r[0], f'{r[2]:,}', r[3], 100 * r[4], 100 * r[5], r[6], r[9])
                + (' - |' if a.margin else ''), flush=True)
    for n in [n for n in a.names if n != 'kernel'] or list(CONFIGS):
        for final in ([False, True] if a.final else [False]):
            rows, _ = run(n, data, a.cache, final, a.margin)
            for r in rows:
                print('| %s | %d | %s | %.2e | %.1f%% | %.2f%% | %.1e | %.2e | %.2e | %.0f |' % (
                    r[0], r[1], f'{r[2]:,}', r[3], 100 * r[4], 100 * r[5], r[6], r[7], r[8], r[9])
                    + (' %.2e |' % r[10] if a.margin else ''),
                    flush=True)


if __name__ == '__main__':
    main()
