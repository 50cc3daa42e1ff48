"""Rows for ``np.einsum`` and ``numpy.linalg``, and the composites around them.

Rules follow Giles, "An extended collection of matrix derivative results" (2008), Murray
(cholesky, arXiv:1602.07527), Townsend (svd) and JAX's ``lax.linalg`` JVP rules, written
again here with primitives. Every rule handles leading batch dimensions.

Tuple-returning functions (``eigh``, ``svd``, ``qr``, ``slogdet``) are each ONE primitive
returning a packed array (for eigh: the eigenvalues as an extra first row above the
eigenvectors) and ``getitem``s that unpack it. Why packed rather than one primitive per
output: the decomposition is computed once, eager and under ``jit`` alike (jit records
one call and two slices, never a tuple), and one VJP sees the cotangents of all outputs
together, which the eigenvector and singular-vector rules need.

Degenerate points (repeated eigenvalues or singular values, singular matrices) are
documented in docs/conventions.md: a cotangent that depends on an undefined eigenvector
rotation gives NaN (as JAX and PyTorch do); losses of eigenvalues alone stay finite.
"""

from __future__ import annotations

import builtins
import string
from typing import Any

import numpy as np

from . import _batch_rules as B
from . import _ops
from . import _rules as R
from ._backend import dtype_of, float_dtype, ndim_of, shape_of
from ._ops import implements, no_out
from ._primitive import Examples
from ._rules import _swap_last, _uniform, defprimitive
from ._rules_more import _is_complex, _np_abs, conj, leading_batch, real
from ._rules_more import imag as imag_part

T = _swap_last


def _real_only(name: str, *arrays: Any) -> None:
    """The rules of these decompositions are written for real matrices: a complex one
    is refused rather than given a wrong derivative."""
    if any(_is_complex(a) for a in arrays):
        raise TypeError(f"np.linalg.{name} of a complex traced matrix is not supported: its "
                        "rule is written for real matrices (inv, det, solve, eigh, eigvalsh, "
                        "svd, svdvals, matrix_power, einsum and the norms take complex "
                        "values)")


def _eye(n: int, like: Any) -> np.ndarray:
    return np.eye(n, dtype=float_dtype(dtype_of(like)))


def _diag_embed(v):
    """(..., n) -> (..., n, n) with v on the diagonal."""
    n = shape_of(v)[-1]
    return R.reshape(v, shape=shape_of(v)[:-1] + (1, n)) * _eye(n, v)


def _diag_part(m):
    """(..., n, n) -> (..., n)."""
    return R.sum_(m * _eye(shape_of(m)[-1], m), axis=-1)


def _col(v):
    return R.reshape(v, shape=shape_of(v) + (1,))


def _row(v):
    return R.reshape(v, shape=shape_of(v)[:-1] + (1, shape_of(v)[-1]))


def _tril(x, k=0):
    n, m = shape_of(x)[-2:]
    return R.where(np.tril(np.ones((n, m), dtype=bool), k), x, 0.0)


def _H(x):
    """The conjugate transpose (the transpose of a real matrix)."""
    return conj(T(x)) if _is_complex(x) else T(x)


def _conj(x):
    return conj(x) if _is_complex(x) else x


def _re(x):
    return real(x) if _is_complex(x) else x


# --- einsum ---------------------------------------------------------------------------------


def _einsum_impl(*operands, subscripts, optimize=False):
    return np.einsum(subscripts, *operands, optimize=optimize)


def _letter_sizes(inputs: list[str], operands: tuple) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for subs, op in zip(inputs, operands, strict=True):
        for letter, n in zip(subs, shape_of(op), strict=True):
            sizes[letter] = builtins.max(sizes.get(letter, 1), n)
    return sizes


def _einsum_vjp(i):
    def vjp(g, ans, *operands, subscripts, optimize=False):
        lhs, out = subscripts.split("->")
        inputs = lhs.split(",")
        sizes = _letter_sizes(inputs, operands)
        mine = inputs[i]
        present = set(out) | {c for j, s in enumerate(inputs) if j != i for c in s}
        unused = [c for c in string.ascii_letters if c not in subscripts]
        target, extra_subs, extra_ops, seen = "", [], [], set()
        for c in mine:
            if c in seen:  # a repeated index: the gradient lives on a diagonal
                fresh = unused.pop()
                target += fresh
                extra_subs.append(c + fresh)
                extra_ops.append(_eye(sizes[c], g))
                continue
            seen.add(c)
            target += c
            if c not in present:  # summed in this operand only: the gradient is constant
                extra_subs.append(c)
                extra_ops.append(np.ones(sizes[c], dtype=float_dtype(dtype_of(g))))
        others = [s for j, s in enumerate(inputs) if j != i]
        spec = ",".join([out, *others, *extra_subs]) + "->" + target
        ops = [g, *[op for j, op in enumerate(operands) if j != i], *extra_ops]
        return einsum(*ops, subscripts=spec, optimize="greedy" if len(ops) > 2 else False)

    return vjp


def _einsum_jvp(tangents, ans, *operands, subscripts, optimize=False):
    out = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        ops = list(operands)
        ops[i] = t
        term = einsum(*ops, subscripts=subscripts, optimize=optimize)
        out = term if out is None else out + term
    return out


def _einsum_test(rng):
    u = lambda *s: _uniform(rng, s)  # noqa: E731
    return [((u(2, 3), u(3, 4)), {"subscripts": "ij,jk->ik"}),
            ((u(3, 3),), {"subscripts": "ii->i"}), ((u(3, 3),), {"subscripts": "ii->"}),
            ((u(2, 3), u(3)), {"subscripts": "ij,j->"}),
            ((u(2, 3, 4),), {"subscripts": "ijk->kj"}),
            ((u(2, 3, 4), u(2, 4, 5), u(5)), {"subscripts": "bij,bjk,k->bi"}),
            ((u(2, 3), u(4)), {"subscripts": "ij,k->ijk"}),
            ((u(3, 3, 2), u(3)), {"subscripts": "iij,i->j"})]


def _einsum_batch(args, dims, *, subscripts, optimize=False):
    # A fresh letter for the batch axis, on the batched operands and the output.
    letter = next(c for c in string.ascii_letters if c not in subscripts)
    lhs, out = subscripts.split("->")
    inputs = lhs.split(",")
    moved = [a if d is None else B.moveaxis(a, d, 0) for a, d in zip(args, dims, strict=True)]
    inputs = [s if d is None else letter + s for s, d in zip(inputs, dims, strict=True)]
    spec = ",".join(inputs) + "->" + letter + out
    return einsum(*moved, subscripts=spec, optimize=optimize), 0


einsum = defprimitive("einsum", _einsum_impl, vjp=R.EveryArgument(_einsum_vjp),
                      jvp=_einsum_jvp, test=Examples(_einsum_test), batch=_einsum_batch)


def _explicit_subscripts(subscripts: str, operands: tuple) -> str:
    """``subscripts`` with ``...`` spelled out and the output written explicitly."""
    s = subscripts.replace(" ", "")
    lhs, arrow, out = s.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(operands):
        raise ValueError(f"einsum: {len(inputs)} operand subscripts for {len(operands)} "
                         "operands")
    free = [c for c in string.ascii_letters if c not in s]
    n_ell = builtins.max([ndim_of(op) - len(sub.replace("...", ""))
                          for sub, op in zip(inputs, operands, strict=True) if "..." in sub]
                         or [0])
    ell = "".join(free[:n_ell])
    spelled = []
    for sub, op in zip(inputs, operands, strict=True):
        if "..." in sub:
            k = ndim_of(op) - len(sub.replace("...", ""))
            sub = sub.replace("...", ell[n_ell - k:] if k else "")
        if len(sub) != ndim_of(op):
            raise ValueError(f"einsum: subscripts {sub!r} do not match an operand of shape "
                             f"{shape_of(op)}")
        spelled.append(sub)
    if arrow:
        out = out.replace("...", ell)
    else:
        counts = {c: "".join(spelled).count(c) for c in set("".join(spelled))}
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    return ",".join(spelled) + "->" + out


def _from_interleaved(args: list) -> tuple[str, list]:
    """np.einsum(a, [0, 1], b, [1, 2], [0, 2]) as ('ab,bc->ac', [a, b])."""
    letters = string.ascii_letters

    def spell(sub):
        return "".join("..." if i is Ellipsis else letters[int(i)] for i in sub)

    operands, subs = args[0::2], [spell(s) for s in args[1::2]]
    out = None
    if len(operands) > len(subs):  # a trailing output sublist
        out = spell(operands.pop())
    spec = ",".join(subs) + ("" if out is None else "->" + out)
    return spec, operands


@implements(np.einsum)
def _np_einsum(*operands, out=None, optimize=False, **kwargs):
    no_out("einsum", {"out": out, **{k: v for k, v in kwargs.items() if k != "casting"}})
    subscripts, *operands = operands
    if not isinstance(subscripts, str):
        subscripts, operands = _from_interleaved([subscripts, *operands])
    operands = tuple(operands)
    spec = _explicit_subscripts(subscripts, operands)
    if len(set(spec.split("->")[1])) != len(spec.split("->")[1]):
        raise ValueError(f"einsum: output subscript {spec.split('->')[1]!r} repeats a letter")
    return einsum(*operands, subscripts=spec,
                  optimize=optimize if isinstance(optimize, bool | str) else "greedy")


# --- inverse, determinant, solve --------------------------------------------------------------


def _square_test(rng, shapes=((3, 3), (2, 3, 3))):
    # Well conditioned: the identity plus a small random part.
    return [((np.eye(s[-1]) * 2.0 + _uniform(rng, s, -0.5, 0.5),), {}) for s in shapes]


inv = defprimitive(
    "inv", np.linalg.inv,
    vjp=[lambda g, ans, x: -(T(ans) @ g @ T(ans))],
    jvp=lambda t, ans, x: -(ans @ t[0] @ ans),
    test=Examples(_square_test), numpy=np.linalg.inv, batch=leading_batch("inv"),
)


def _det_vjp(g, ans, x):
    return _col(_col(g * ans)) * T(inv(x))


det = defprimitive(
    "det", np.linalg.det, vjp=[_det_vjp],
    jvp=lambda t, ans, x: ans * R.sum_(T(inv(x)) * t[0], axis=(-2, -1)),
    test=Examples(_square_test), numpy=np.linalg.det, batch=leading_batch("det"),
)


def _slogdet_impl(x):
    sign, logdet = np.linalg.slogdet(x)
    return np.stack([sign, logdet], axis=-1)


def _slogdet_vjp(g, ans, x):
    # The sign (entry 0) is piecewise constant: only log|det| (entry 1) has a derivative.
    return _col(_col(R.getitem(g, index=(Ellipsis, 1)))) * T(inv(x))


def _slogdet_jvp(t, ans, x):
    logdet_dot = R.sum_(T(inv(x)) * t[0], axis=(-2, -1))
    return R.concatenate(_col(R.mul(logdet_dot, 0.0)), _col(logdet_dot), axis=-1)


# One LAPACK call for both results: the sign and log|det| stacked on a last axis of 2.
slogdet_packed = defprimitive(
    "slogdet", _slogdet_impl, vjp=[_slogdet_vjp], jvp=_slogdet_jvp,
    test=Examples(lambda rng: _square_test(rng) + [((np.diag([-1.0, 2.0, 0.5]),), {})]),
    batch=leading_batch("slogdet"),
)


@implements(np.linalg.slogdet)
def _np_slogdet(x):
    _real_only("slogdet", x)
    packed = slogdet_packed(x)
    return np.linalg._linalg.SlogdetResult(R.getitem(packed, index=(Ellipsis, 0)),
                                           R.getitem(packed, index=(Ellipsis, 1)))


def _as_matrix_rhs(a, b):
    """NumPy 2's rule: b is a stack of vectors only when it is 1-D."""
    return ndim_of(b) == 1


def _solve_vjp_a(g, ans, a, b):
    gb = solve(T(a), g)
    if _as_matrix_rhs(a, b):
        return -(_col(gb) * _row(ans))
    return -(gb @ T(ans))


def _solve_batch(args, dims):
    # NumPy 2 reads a 1-D b as a vector; a batch of them is a stack of one-column matrices.
    (a, b), (da, db) = args, dims
    size = B.batch_size(args, dims)
    vector = ndim_of(b) - (db is not None) == 1
    a, b = B.to_front(a, da, size), B.to_front(b, db, size)
    if vector:
        out = solve(a, R.reshape(b, shape=shape_of(b) + (1,)))
        return R.reshape(out, shape=shape_of(out)[:-1]), 0
    return solve(a, b), 0


solve = defprimitive(
    "solve", np.linalg.solve, batch=_solve_batch,
    vjp=[_solve_vjp_a, lambda g, ans, a, b: solve(T(a), g)],
    jvp=lambda t, ans, a, b: _solve_jvp(t, ans, a, b),
    test=Examples(lambda rng: [
        ((np.eye(3) * 2 + _uniform(rng, (3, 3), -0.5, 0.5), _uniform(rng, (3,))), {}),
        ((np.eye(3) * 2 + _uniform(rng, (2, 3, 3), -0.5, 0.5), _uniform(rng, (2, 3, 2))),
         {})]),
    numpy=np.linalg.solve,
)


def _solve_jvp(tangents, ans, a, b):
    a_dot, b_dot = tangents
    rhs = None
    if a_dot is not None:
        rhs = -(a_dot @ ans) if not _as_matrix_rhs(a, b) else -R.matmul(a_dot, ans)
    if b_dot is not None:
        rhs = b_dot if rhs is None else rhs + b_dot
    return None if rhs is None else solve(a, rhs)


# --- cholesky ---------------------------------------------------------------------------------
# NumPy's cholesky and eigh read one triangle of their input (the lower one by default) and
# never look at the other. glassgrad differentiates exactly that function, as HIPS
# autograd's eigh does: the tangent dA acts through the symmetric matrix the routine sees,
# tril(dA) + tril(dA, -1)^T, and the gradient is the adjoint of that map (the diagonal,
# plus twice the strict lower triangle of the symmetric gradient). Finite differences of
# the user's NumPy code (gg.check_grad) then agree for any input. JAX and PyTorch return
# the symmetric gradient instead; for a symmetric input built as f(B + B^T) or checked
# along symmetric directions the two agree (docs/conventions.md).


def _tri(x, uplo, k=0):
    n, m = shape_of(x)[-2:]
    mask = (np.tril(np.ones((n, m), dtype=bool), k) if uplo == "L"
            else np.triu(np.ones((n, m), dtype=bool), -k))
    return R.where(mask, x, 0.0)


def _seen(t, uplo="L"):
    """The symmetric (Hermitian) matrix the routine sees when its input moves along
    ``t``: one strict triangle, its (conjugate) transpose, and the real diagonal."""
    strict = _tri(t, uplo, -1)
    return strict + _H(strict) + _diag_embed(_re(_diag_part(t)))


def _seen_adjoint(s, uplo="L"):
    """The adjoint of ``_seen`` (JAX's convention for complex values): the gradient with
    respect to the triangle the routine read, for any gradient ``s`` of the matrix it saw."""
    return _tri(s, uplo, -1) + _tri(_H(s), uplo, -1) + _diag_embed(_re(_diag_part(s)))


def _phi(x):
    # The lower triangle with the diagonal halved.
    n = shape_of(x)[-1]
    return _tril(x) * (1.0 - 0.5 * _eye(n, x))


def _cholesky_vjp(g, ans, a):
    # Murray (2016): S = L^-T phi(L^T g) L^-1, symmetrised.
    L = ans
    inner = _phi(T(L) @ g)
    return _seen_adjoint(solve(T(L), T(solve(T(L), T(inner)))))


def _cholesky_jvp(t, ans, a):
    # dL = L phi(L^-1 dA L^-T) for the symmetric part dA of the tangent.
    L = ans
    inner = solve(L, T(solve(L, T(_seen(t[0])))))
    return L @ _phi(inner)


def _spd(rng, s):
    m = _uniform(rng, s, -1, 1)
    return np.matmul(m, np.swapaxes(m, -1, -2)) + s[-1] * np.eye(s[-1])


cholesky = defprimitive("cholesky", np.linalg.cholesky, vjp=[_cholesky_vjp], jvp=_cholesky_jvp,
                        batch=leading_batch("cholesky"),
                        test=Examples(lambda rng: [((_spd(rng, s),), {})
                                                   for s in [(3, 3), (2, 4, 4)]]))


@implements(np.linalg.cholesky)
def _np_cholesky(a, /, *, upper=False):
    _real_only("cholesky", a)
    low = cholesky(a)
    return T(low) if upper else low


# --- eigh: eigenvalues as the first row above the eigenvectors --------------------------------


def _eigh_impl(x, *, UPLO="L"):
    w, v = np.linalg.eigh(x, UPLO=UPLO)
    return np.concatenate([w[..., None, :], v], axis=-2)


def _eigh_split(p):
    """The eigenvalues (real, also when the packed array is complex) and eigenvectors."""
    return _re(R.getitem(p, index=(Ellipsis, 0, slice(None)))), R.getitem(
        p, index=(Ellipsis, slice(1, None), slice(None)))


def _gap_weights(e, m):
    """F * m with F[i, j] = 1 / (e[j] - e[i]) off the diagonal, 0 on it; where two entries
    of e are equal (off the diagonal) and m is not 0 there, NaN: the derivative of a
    quantity that depends on how a repeated eigenspace is rotated does not exist."""
    diff = _row(e) - _col(e)
    n = shape_of(e)[-1]
    off = ~np.eye(n, dtype=bool)
    tie = R.logical_and(R.equal(diff, 0), off)
    safe = R.where(tie, 1.0, R.where(off, diff, 1.0))
    weighted = R.where(off, m / safe, 0.0)
    nan = np.asarray(np.nan, dtype=float_dtype(dtype_of(m)))
    return R.where(R.logical_and(tie, R.not_equal(m, 0)), nan, R.where(tie, 0.0, weighted))


def _eigh_vjp(g, ans, x, *, UPLO="L"):
    w, v = _eigh_split(ans)
    gw, gv = _eigh_split(g)
    inner = _diag_embed(gw) + _gap_weights(w, T(v) @ gv)
    return _seen_adjoint(_conj(v) @ inner @ T(v), UPLO)


def _eigh_jvp(t, ans, x, *, UPLO="L"):
    w, v = _eigh_split(ans)
    m = _H(v) @ _seen(t[0], UPLO) @ v
    w_dot = _re(_diag_part(m))
    v_dot = v @ _gap_weights(w, m)
    return R.concatenate(_row(w_dot), v_dot, axis=-2)


def _sym_test(rng):
    out = []
    for s, uplo in [((3, 3), "L"), ((2, 4, 4), "U")]:
        m = _uniform(rng, s)
        out.append(((m + np.swapaxes(m, -1, -2),), {"UPLO": uplo}))
    return out


def _hermitian_test(rng):
    m = _uniform(rng, (3, 3)) + 1j * _uniform(rng, (3, 3))
    return [((m + m.conj().T,), {"UPLO": "L"})]


def _eigh_loss_test(rng):
    # Eigenvectors have a sign per column; the table's random cotangent is fine because
    # LAPACK keeps the sign under small perturbations, which the check relies on.
    return _sym_test(rng)


eigh_packed = defprimitive("eigh", _eigh_impl, vjp=[_eigh_vjp], jvp=_eigh_jvp,
                           batch=leading_batch("eigh"),
                           test=Examples(_eigh_loss_test))


@implements(np.linalg.eigh)
def _np_eigh(a, UPLO="L"):
    w, v = _eigh_split(eigh_packed(a, UPLO=UPLO))
    return np.linalg._linalg.EighResult(w, v)


def _eigvalsh_impl(x, *, UPLO="L"):
    return np.linalg.eigvalsh(x, UPLO=UPLO)


def _eigvalsh_vjp(g, ans, x, *, UPLO="L"):
    v = _eigh_split(eigh_packed(x, UPLO=UPLO))[1]
    return _seen_adjoint((_conj(v) * _row(_re(g))) @ T(v), UPLO)


def _eigvalsh_jvp(t, ans, x, *, UPLO="L"):
    v = _eigh_split(eigh_packed(x, UPLO=UPLO))[1]
    return _re(_diag_part(_H(v) @ _seen(t[0], UPLO) @ v))


# Eigenvalues alone: finite at repeated eigenvalues (no eigenvector term at all).
eigvalsh = defprimitive("eigvalsh", _eigvalsh_impl, vjp=[_eigvalsh_vjp], jvp=_eigvalsh_jvp,
                        batch=leading_batch("eigvalsh"),
                        test=Examples(lambda rng: _sym_test(rng) + _hermitian_test(rng)))


@implements(np.linalg.eigvalsh)
def _np_eigvalsh(a, UPLO="L"):
    return eigvalsh(a, UPLO=UPLO)


# --- svd: U, s and Vh packed in one array -----------------------------------------------------
# A tall or square matrix packs along the rows: U (m x n) above s (1 x n) above Vh (n x n).
# A wide one packs along the columns: U (m x m), s (m x 1), Vh (m x n) side by side; its
# rules are the tall ones applied to the transpose (svd(A^T) has the same factors,
# transposed: no second decomposition, and NumPy's signs are kept).


def _svd_impl(x):
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    m, n = x.shape[-2:]
    if m >= n:
        return np.concatenate([u, s[..., None, :], vh], axis=-2)
    return np.concatenate([u, s[..., :, None], vh], axis=-1)


def _svd_split(p, m, n):
    """U, s (real, also when the packed array is complex) and Vh."""
    if m >= n:
        u = R.getitem(p, index=(Ellipsis, slice(0, m), slice(None)))
        s = R.getitem(p, index=(Ellipsis, m, slice(None)))
        vh = R.getitem(p, index=(Ellipsis, slice(m + 1, None), slice(None)))
        return u, _re(s), vh
    u = R.getitem(p, index=(Ellipsis, slice(None), slice(0, m)))
    s = R.getitem(p, index=(Ellipsis, slice(None), m))
    vh = R.getitem(p, index=(Ellipsis, slice(None), slice(m + 1, None)))
    return u, _re(s), vh


def _svd_pack(u, s, vh, m, n):
    if m >= n:
        return R.concatenate(u, _row(s), vh, axis=-2)
    return R.concatenate(u, _col(s), vh, axis=-1)


def _svd_tall_vjp(u, s, vh, gu, gs, gvh, m, n):
    # Townsend's rule with the conjugates complex matrices need (as HIPS autograd's).
    v, gv = _H(vh), _H(gvh)
    utgu, vtgv = T(u) @ gu, T(v) @ gv
    s2 = s * s
    inner = (_gap_weights(s2, utgu - _H(utgu)) * _row(s) + _diag_embed(_re(gs))
             + _col(s) * _gap_weights(s2, vtgv - _H(vtgv)))
    if _is_complex(u):  # the phase of each singular pair
        inner = inner + _diag_embed(imag_part(_diag_part(utgu)) * 1j / s)
    out = _conj(u) @ inner @ T(v)
    if m > n:  # the part of gu outside the span of u
        out = out + (gu - _conj(u) @ (T(u) @ gu)) / _row(s) @ T(v)
    return out


def _svd_tall_jvp(u, s, vh, a_dot, m, n):
    # JAX's svd_jvp_rule, conjugate transposes included.
    v = _H(vh)
    ds_mat = _H(u) @ a_dot @ v
    s_dot = _re(_diag_part(ds_mat))
    s2 = s * s
    dss = ds_mat * _row(s)
    sds = _col(s) * ds_mat
    u_inner = _gap_weights(s2, dss + _H(dss))
    if _is_complex(ds_mat):  # the phase of each singular pair
        u_inner = u_inner + _diag_embed(imag_part(_diag_part(ds_mat)) * 1j / s)
    u_dot = u @ u_inner
    v_dot = v @ _gap_weights(s2, sds + _H(sds))
    if m > n:
        dav = a_dot @ v
        u_dot = u_dot + (dav - u @ (_H(u) @ dav)) / _row(s)
    return u_dot, s_dot, _H(v_dot)


def _svd_vjp(g, ans, x):
    m, n = shape_of(x)[-2:]
    u, s, vh = _svd_split(ans, m, n)
    gu, gs, gvh = _svd_split(g, m, n)
    if m >= n:
        return _svd_tall_vjp(u, s, vh, gu, gs, gvh, m, n)
    return T(_svd_tall_vjp(T(vh), s, T(u), T(gvh), gs, T(gu), n, m))


def _svd_jvp(t, ans, x):
    m, n = shape_of(x)[-2:]
    u, s, vh = _svd_split(ans, m, n)
    if m >= n:
        return _svd_pack(*_svd_tall_jvp(u, s, vh, t[0], m, n), m, n)
    vh_dot, s_dot, u_dot = _svd_tall_jvp(T(vh), s, T(u), T(t[0]), n, m)
    return _svd_pack(T(u_dot), s_dot, T(vh_dot), m, n)


def _svd_test(rng):
    return [((_uniform(rng, s),), {}) for s in [(3, 3), (4, 2), (2, 5, 3), (2, 4), (2, 2, 3)]]


svd_packed = defprimitive("svd", _svd_impl, vjp=[_svd_vjp], jvp=_svd_jvp,
                          batch=leading_batch("svd"),
                          test=Examples(_svd_test))


def _svdvals_impl(x):
    return np.linalg.svd(x, compute_uv=False)


def _svdvals_uv(x):
    m, n = shape_of(x)[-2:]
    u, _, vh = _svd_split(svd_packed(x), m, n)
    return u, vh


def _svdvals_vjp(g, ans, x):
    u, vh = _svdvals_uv(x)
    return _conj((u * _row(_re(g))) @ vh)


def _svdvals_jvp(t, ans, x):
    u, vh = _svdvals_uv(x)
    return _re(_diag_part(_H(u) @ t[0] @ _H(vh)))


# Singular values alone: finite at repeated singular values.
svdvals = defprimitive("svdvals", _svdvals_impl, vjp=[_svdvals_vjp], jvp=_svdvals_jvp,
                       batch=leading_batch("svdvals"),
                       test=Examples(lambda rng: _svd_test(rng) + [
                           ((_uniform(rng, s) + 1j * _uniform(rng, s),), {})
                           for s in [(3, 2), (2, 3)]]))


@implements(np.linalg.svd)
def _np_svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    if not compute_uv:
        return svdvals(a)
    m, n = shape_of(a)[-2:]
    if full_matrices and m != n:
        raise TypeError("np.linalg.svd(full_matrices=True) of a non-square traced matrix is "
                        "not supported: the extra singular vectors are not unique; pass "
                        "full_matrices=False")
    u, s, vh = _svd_split(svd_packed(a), m, n)
    return np.linalg._linalg.SVDResult(u, s, vh)


@implements(np.linalg.svdvals)
def _np_svdvals(x):
    return svdvals(x)


# --- qr: Q above R (tall or square matrices, reduced mode) ----------------------------------


def _qr_impl(x):
    q, r = np.linalg.qr(x)
    return np.concatenate([q, r], axis=-2)


def _qr_split(p, m):
    return (R.getitem(p, index=(Ellipsis, slice(0, m), slice(None))),
            R.getitem(p, index=(Ellipsis, slice(m, None), slice(None))))


def _right_solve(x, r):
    """x R^-1."""
    return T(solve(T(r), T(x)))


def _qr_vjp(g, ans, x):
    m = shape_of(x)[-2]
    q, r = _qr_split(ans, m)
    gq, gr = _qr_split(g, m)
    mm = r @ T(gr) - T(gq) @ q
    copyltu = _tril(mm) + T(_tril(mm, -1))
    return T(solve(r, T(gq + q @ copyltu)))


def _qr_jvp(t, ans, x):
    m = shape_of(x)[-2]
    q, r = _qr_split(ans, m)
    dx_rinv = _right_solve(t[0], r)
    qt_dx_rinv = T(q) @ dx_rinv
    lower = _tril(qt_dx_rinv, -1)
    do = lower - T(lower)
    q_dot = q @ (do - qt_dx_rinv) + dx_rinv
    r_dot = (qt_dx_rinv - do) @ r
    return R.concatenate(q_dot, r_dot, axis=-2)


qr_packed = defprimitive(
    "qr", _qr_impl, vjp=[_qr_vjp], jvp=_qr_jvp, batch=leading_batch("qr"),
    test=Examples(lambda rng: [((_uniform(rng, s),), {}) for s in [(3, 3), (4, 2), (2, 4, 3)]]),
)


@implements(np.linalg.qr)
def _np_qr(a, mode="reduced"):
    _real_only("qr", a)
    m, n = shape_of(a)[-2:]
    if m < n or mode not in ("reduced", "r", "complete") or (mode == "complete" and m != n):
        raise TypeError(f"np.linalg.qr(mode={mode!r}) of a traced {m}x{n} matrix is not "
                        "supported: glassgrad differentiates the reduced QR of a tall or "
                        "square matrix")
    q, r = _qr_split(qr_packed(a), m)
    return r if mode == "r" else np.linalg._linalg.QRResult(q, r)


# --- pinv, matrix_power, norm -----------------------------------------------------------------


def _pinv_impl(x, *, rcond=None):
    return np.linalg.pinv(x) if rcond is None else np.linalg.pinv(x, rcond=rcond)


def _pinv_vjp(g, ans, x, *, rcond=None):
    # Golub and Pereyra's derivative of the pseudo-inverse (valid at a constant rank).
    p = ans
    m, n = shape_of(x)[-2:]
    eye_m, eye_n = _eye(m, x), _eye(n, x)
    return (-(T(p) @ g @ T(p)) + (eye_m - x @ p) @ T(g) @ p @ T(p)
            + T(p) @ p @ T(g) @ (eye_n - p @ x))


def _pinv_jvp(t, ans, x, *, rcond=None):
    p, dx = ans, t[0]
    m, n = shape_of(x)[-2:]
    return (-(p @ dx @ p) + p @ T(p) @ T(dx) @ (_eye(m, x) - x @ p)
            + (_eye(n, x) - p @ x) @ T(dx) @ T(p) @ p)


pinv = defprimitive(
    "pinv", _pinv_impl, vjp=[_pinv_vjp], jvp=_pinv_jvp, batch=leading_batch("pinv"),
    test=Examples(lambda rng: [((_uniform(rng, s),), {}) for s in [(3, 3), (4, 2), (2, 3, 5)]]),
)


@implements(np.linalg.pinv)
def _np_pinv(a, rcond=None, hermitian=False, *, rtol=None):
    _real_only("pinv", a)
    return pinv(a, rcond=rcond if rtol is None else rtol)


@implements(np.linalg.matrix_power)
def _np_matrix_power(a, n):
    n = int(n)
    if n < 0:
        a, n = inv(a), -n
    if n == 0:
        return R.broadcast_to(_eye(shape_of(a)[-1], a), shape=shape_of(a))
    result = None
    while n:
        if n & 1:
            result = a if result is None else result @ a
        n >>= 1
        if n:
            a = a @ a
    return result


def _safe_l2(x, axis, keepdims):
    """sqrt(sum(x^2)) with gradient 0 (PyTorch's subgradient) where the norm is 0, rather
    than the 0/0 = NaN of the plain formula."""
    sq = real(x * conj(x)) if _is_complex(x) else x * x
    ss = R.sum_(sq, axis=axis, keepdims=keepdims)
    zero = R.equal(ss, 0)
    return R.where(zero, 0.0, R.sqrt(R.where(zero, 1.0, ss)))


@implements(np.linalg.norm)
def _np_norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    nd = ndim_of(x)
    if axis is None and (ord is None or ord == "fro" and nd == 2):
        return _reshape_kept(_safe_l2(x, None, False), nd, keepdims)
    if axis is None:
        axis = tuple(range(nd)) if nd == 2 else (0,)
    axis = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    axis = tuple(int(a) % nd for a in axis)
    if len(axis) == 1:
        return _vector_norm(x, ord, axis[0], keepdims)
    if len(axis) == 2:
        return _matrix_norm(x, ord, axis, keepdims)
    raise ValueError("Improper number of dimensions to norm.")


def _reshape_kept(out, nd, keepdims):
    return R.reshape(out, shape=(1,) * nd) if keepdims else out


def _vector_norm(x, ord, axis, keepdims):  # noqa: A002
    if ord is None or ord == 2:
        return _safe_l2(x, axis, keepdims)
    a = _np_abs(x)
    if ord == np.inf:
        return R.max_(a, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return R.min_(a, axis=axis, keepdims=keepdims)
    if ord == 0:
        return R.sum_(R.astype(R.not_equal(x, 0), dtype=float_dtype(dtype_of(x))),
                      axis=axis, keepdims=keepdims)
    if ord == 1:
        return R.sum_(a, axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    return R.power(R.sum_(R.power(a, float(ord)), axis=axis, keepdims=keepdims), 1.0 / ord)


def _matrix_norm(x, ord, axis, keepdims):  # noqa: A002
    r, c = axis
    if ord is None or ord == "fro":
        out = _safe_l2(x, axis, True)
    elif ord in (1, -1, np.inf, -np.inf):
        sum_axis, pick_axis = (r, c) if ord in (1, -1) else (c, r)
        sums = R.sum_(_np_abs(x), axis=sum_axis, keepdims=True)
        pick = R.max_ if ord in (1, np.inf) else R.min_
        out = pick(sums, axis=pick_axis, keepdims=True)
    elif ord in (2, -2, "nuc"):
        moved = _ops.transpose(x, [i for i in range(ndim_of(x)) if i not in axis] + [r, c])
        s = svdvals(moved)
        out = (R.sum_ if ord == "nuc" else R.max_ if ord == 2 else R.min_)(s, axis=-1)
        shape = list(shape_of(x))
        shape[r] = shape[c] = 1
        out = R.reshape(out, shape=tuple(shape))
    else:
        raise ValueError(f"Invalid norm order {ord!r} for matrices")
    if keepdims:
        return out
    return R.reshape(out, shape=tuple(n for i, n in enumerate(shape_of(out)) if i not in axis))


@implements(np.linalg.matrix_norm)
def _np_matrix_norm(x, /, *, keepdims=False, ord="fro"):  # noqa: A002
    return _matrix_norm(x, ord, (ndim_of(x) - 2, ndim_of(x) - 1), keepdims)


@implements(np.linalg.vector_norm)
def _np_vector_norm(x, /, *, axis=None, keepdims=False, ord=2):  # noqa: A002
    if axis is None:
        return _reshape_kept(_vector_norm(_ops.ravel(x), ord, 0, False), ndim_of(x), keepdims)
    return _np_norm(x, ord, axis, keepdims)


@implements(np.linalg.multi_dot)
def _np_multi_dot(arrays, *, out=None):
    no_out("multi_dot", {"out": out})
    result = arrays[0]
    for a in arrays[1:]:
        result = _ops.dot(result, a)
    return result


@implements(np.linalg.matmul)
def _np_linalg_matmul(x1, x2, /):
    return _ops.matmul(x1, x2)
