"""Reproduce scikit-learn's SVC(probability=True) pairwise Platt parameters step by step.

Usage:
    python scripts/libsvm_platt_reference.py

A Python transcription of libsvm's `sigmoid_train` and `svm_binary_svc_probability` (svm.cpp
of cjlin1/libsvm and of scikit-learn's fork), with scikit-learn's shuffle (an mt19937 seeded
by `set_seed`, Lemire's bounded integers from `newrand.h`). Each fold's machine is fitted by
`SVC` itself on the rows libsvm would give it, in the same order, so the cross-validated
decision values are libsvm's own. The script checks that the result equals `probA_` /
`probB_` of `SVC(probability=True)` on a few small problems, then prints the fixtures of
`models::svm`'s unit tests (`sigmoid_train` inputs and outputs, repr precision).

Note scikit-learn's fork re-seeds the generator in every inner `svm_train` (the fold
machines copy `random_seed`), so every pair's shuffle starts from the same seed.
"""

import math
import warnings

import numpy as np
from sklearn.datasets import load_iris
from sklearn.svm import SVC


def sigmoid_train(dec, labels):
    """libsvm's sigmoid_train: (A, B) with P(label > 0 | f) = 1 / (1 + exp(A f + B))."""
    prior1 = float(sum(1 for v in labels if v > 0))
    prior0 = float(len(labels)) - prior1
    max_iter, min_step, sigma, eps = 100, 1e-10, 1e-12, 1e-5
    hi = (prior1 + 1.0) / (prior1 + 2.0)
    lo = 1 / (prior0 + 2.0)
    t = [hi if v > 0 else lo for v in labels]
    a, b = 0.0, math.log((prior0 + 1.0) / (prior1 + 1.0))

    def objective(a, b):
        f = 0.0
        for d, ti in zip(dec, t):
            fapb = d * a + b
            if fapb >= 0:
                f += ti * fapb + math.log(1 + math.exp(-fapb))
            else:
                f += (ti - 1) * fapb + math.log(1 + math.exp(fapb))
        return f

    fval = objective(a, b)
    for _ in range(max_iter):
        h11, h22, h21, g1, g2 = sigma, sigma, 0.0, 0.0, 0.0
        for d, ti in zip(dec, t):
            fapb = d * a + b
            if fapb >= 0:
                p = math.exp(-fapb) / (1.0 + math.exp(-fapb))
                q = 1.0 / (1.0 + math.exp(-fapb))
            else:
                p = 1.0 / (1.0 + math.exp(fapb))
                q = math.exp(fapb) / (1.0 + math.exp(fapb))
            d2 = p * q
            h11 += d * d * d2
            h22 += d2
            h21 += d * d2
            d1 = ti - p
            g1 += d * d1
            g2 += d1
        if abs(g1) < eps and abs(g2) < eps:
            break
        det = h11 * h22 - h21 * h21
        da = -(h22 * g1 - h21 * g2) / det
        db = -(-h21 * g1 + h11 * g2) / det
        gd = g1 * da + g2 * db
        step = 1.0
        while step >= min_step:
            na, nb = a + step * da, b + step * db
            nf = objective(na, nb)
            if nf < fval + 0.0001 * step * gd:
                a, b, fval = na, nb, nf
                break
            step /= 2.0
        if step < min_step:
            break
    return a, b


def sklearn_perm(seed, n):
    """The shuffle of svm_binary_svc_probability with scikit-learn's generator."""
    mt = np.random.MT19937()
    mt._legacy_seeding(seed)  # std::mt19937::seed, as set_seed
    raw = iter(int(v) for v in mt.random_raw(64 * n + 64))

    def bounded(rng):
        x = next(raw)
        m = x * rng
        low = m & 0xFFFFFFFF
        if low < rng:
            t = (-rng) & 0xFFFFFFFF
            if t >= rng:
                t -= rng
                if t >= rng:
                    t %= rng
            while low < t:
                x = next(raw)
                m = x * rng
                low = m & 0xFFFFFFFF
        return m >> 32

    perm = list(range(n))
    for i in range(n):
        j = i + bounded(n - i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def cv_decisions(x, y, gamma, c, seed):
    """svm_binary_svc_probability's decision values; y is +1/-1, f > 0 means +1."""
    n = len(y)
    perm = sklearn_perm(seed, n)
    dec = np.zeros(n)
    for i in range(5):
        begin, end = i * n // 5, (i + 1) * n // 5
        train = perm[:begin] + perm[end:]
        held = perm[begin:end]
        ys = y[train]
        if (ys > 0).all():
            dec[held] = 1.0
        elif (ys < 0).all():
            dec[held] = -1.0
        else:
            m = SVC(C=c, gamma=gamma).fit(x[train], ys)
            # binary decision_function is positive for classes_[1] = +1
            dec[held] = m.decision_function(x[held])
    return dec


def check(name, x, y, random_state=42):
    """Fit SVC(probability=True) and our reproduction; print both, return the pairs."""
    model = SVC(probability=True, random_state=random_state).fit(x, y)
    seed = np.random.RandomState(random_state).randint(np.iinfo("i").max)
    gamma = model._gamma
    classes = model.classes_
    out = []
    p = 0
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            rows = np.concatenate([np.flatnonzero(y == classes[i]), np.flatnonzero(y == classes[j])])
            ypm = np.where(y[rows] == classes[i], 1.0, -1.0)
            dec = cv_decisions(x[rows], ypm, gamma, 1.0, seed)
            a, b = sigmoid_train([float(v) for v in dec], [float(v) for v in ypm])
            sk_a, sk_b = float(model.probA_[p]), float(model.probB_[p])
            ok = abs(a - sk_a) < 1e-12 and abs(b - sk_b) < 1e-12
            print(f"{name} pair ({i},{j}): ours A={a!r} B={b!r}  sklearn A={sk_a!r} B={sk_b!r}  "
                  f"{'same' if ok else 'DIFFERENT'}")
            out.append((dec, ypm, a, b))
            p += 1
    return out


def main():
    # probability=True and probA_/probB_ are deprecated in 1.9 (still what the test compares)
    warnings.filterwarnings("ignore", category=FutureWarning)
    iris = load_iris()
    x, y = iris.data, iris.target
    check("iris", x, y)
    rng = np.random.RandomState(0)
    xb = rng.normal(size=(40, 2))
    yb = (xb[:, 0] + 0.8 * rng.normal(size=40) > 0).astype(int)
    pairs = check("noisy40", xb, yb)
    dec, ypm, a, b = pairs[0]
    print("// fixture: libsvm sign (f > 0 means label +1)")
    print("dec =", "[" + ", ".join(repr(float(v)) for v in dec) + "]")
    print("pos =", "[" + ", ".join("true" if v > 0 else "false" for v in ypm) + "]")
    print(f"A = {a!r}, B = {b!r}")
    # a separable case and a one-sided one, from the transcription alone
    sep = [-2.0, -1.5, -1.0, 1.0, 1.5, 2.0]
    sep_y = [-1, -1, -1, 1, 1, 1]
    print("separable:", sigmoid_train(sep, sep_y))
    flat = [1.0] * 5 + [-1.0] * 3
    flat_y = [1, 1, 1, -1, 1, -1, -1, 1]
    print("constant folds:", sigmoid_train(flat, flat_y))


if __name__ == "__main__":
    main()
