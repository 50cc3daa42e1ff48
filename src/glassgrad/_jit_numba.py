"""``gg.jit(fun, backend="numba")``: runs of elementwise lines fused into compiled loops.

The program is the NumPy program of ``_jit_printer`` (same passes, same lines); only each
*run* of consecutive elementwise lines with one output shape becomes a single call of a
numba-compiled loop that computes every line per element and writes only the values
used after the run. Matmuls, reductions, reshapes and every other primitive stay the
NumPy calls they were. Whether and how a primitive can be written inside a loop is
decided from its row of the rule table (``scalar_form``).

Each kernel is a small generated module, written once to the cache directory under a
name that is the hash of its source, and compiled with numba's ``cache=True``: a second
process (or a second program with the same run) loads the machine code from disk.
Lines on arrays larger than a measured size stay NumPy (``MAX_FUSED_SIZE``, and the
much smaller ``MAX_FUSED_SIZE_LIBM`` for transcendental functions, whose SIMD versions in
NumPy beat a loop of scalar calls): ``bench/numba_threshold.py``, docs/jit.md.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._backend import is_numpy_array
from ._jit_trace import JitTracer, inputs_of
from ._record import Equation

# Above these many elements per array a fused run stays NumPy, measured by
# bench/numba_threshold.py (docs/jit.md): a loop of arithmetic and comparisons beat NumPy
# up to 1M elements (0.20x at 1M, 1.5x at 4M); a loop that calls transcendental
# functions (NumPy runs SIMD versions of them, the loop scalar libm calls) only up to
# about 256 (0.64x at 64, 1.04x at 256, 1.5x at 1024 for W1's sin/tanh chain).
MAX_FUSED_SIZE = _ARITH_DEFAULT = 1 << 20
MAX_FUSED_SIZE_LIBM = _LIBM_DEFAULT = 1 << 8
# Functions NumPy computes with SIMD code, a compiled loop with scalar libm calls.
LIBM = frozenset("""
exp exp2 expm1 log log2 log10 log1p logaddexp logaddexp2 power float_power sin cos tan
arcsin arccos arctan arctan2 hypot sinh cosh tanh arcsinh arccosh arctanh cbrt
""".split())
MIN_RUN = 2  # a lone line gains nothing from a loop of its own
PACK_BYTES = 1 << 16  # results smaller than this come back as rows of one array

_DTYPES = {"f8": "np.float64", "f4": "np.float32", "b1": "np.bool_"}

# NumPy ufuncs that numba compiles on scalars (numba's documented ufunc support).
NUMBA_UFUNCS = frozenset("""
add subtract multiply divide true_divide floor_divide negative positive power float_power
remainder mod fmod absolute fabs rint sign exp exp2 log log2 log10 expm1 log1p sqrt square
cbrt reciprocal sin cos tan arcsin arccos arctan arctan2 hypot sinh cosh tanh arcsinh
arccosh arctanh deg2rad rad2deg degrees radians floor ceil trunc logaddexp logaddexp2
greater greater_equal less less_equal not_equal equal logical_and logical_or logical_xor
logical_not maximum minimum fmax fmin isfinite isinf isnan signbit copysign
""".split())


# Ufuncs written as Python operators or math functions in a loop: the same IEEE
# operations (error_model='numpy': x / 0 is inf, not an exception), which numba compiles in
# half the time of its scalar ufuncs.
_OPERATORS = {
    "add": "({0} + {1})", "subtract": "({0} - {1})", "multiply": "({0} * {1})",
    "true_divide": "({0} / {1})", "divide": "({0} / {1})", "negative": "(-{0})",
    "positive": "(+{0})", "greater": "({0} > {1})", "greater_equal": "({0} >= {1})",
    "less": "({0} < {1})", "less_equal": "({0} <= {1})", "equal": "({0} == {1})",
    "not_equal": "({0} != {1})",
}
_MATH = {"exp": "math.exp", "sin": "math.sin", "cos": "math.cos", "tan": "math.tan",
         "tanh": "math.tanh", "arctan": "math.atan"}


def cache_dir() -> str:
    """Where generated kernels and numba's compiled code live (``GLASSGRAD_CACHE_DIR`` or
    the user cache directory)."""
    root = os.environ.get("GLASSGRAD_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        root = os.path.join(base, "glassgrad")
    return os.path.join(root, "numba")


# --- which primitives a loop can compute -------------------------------------------------


def _kind(value: Any) -> str | None:
    """The dtype code of a value a loop can read or write (float64, float32, bool)."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return None
    code = f"{dtype.kind}{dtype.itemsize}"
    return code if code in _DTYPES else None


def _literal(x: Any, dtype: str | None) -> str | None:
    """``x`` as a scalar literal of the line's dtype, or None when it is not a number."""
    if isinstance(x, bool | np.bool_):
        return repr(bool(x))
    if isinstance(x, int | float | np.floating) and not isinstance(x, bool):
        x = float(x) if isinstance(x, np.floating) or dtype else x
        text = repr(x) if math.isfinite(x) else ("np.nan" if x != x
                                                 else ("np.inf" if x > 0 else "-np.inf"))
        return f"{_DTYPES[dtype]}({text})" if dtype in ("f4", "f8") else text
    return None


def _valid_scalar_code(code: str, names: set[str]) -> bool:
    """``code`` calls only scalar NumPy ufuncs on ``names`` and literals."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                    and f.value.id == "np" and f.attr in NUMBA_UFUNCS) or node.keywords:
                return False
        elif isinstance(node, ast.Attribute):
            if not (isinstance(node.value, ast.Name) and node.value.id == "np"):
                return False
        elif isinstance(node, ast.Name) and node.id != "np" and node.id not in names:
            return False
        elif isinstance(node, ast.Subscript | ast.Lambda | ast.NamedExpr):
            return False
    return True


def scalar_form(eq: Equation, args: list[str], dtype: str) -> tuple[str, str | None] | None:
    """How the line ``eq`` is written inside a loop, given its arguments already written
    as scalar expressions: ``(expression, helper)`` where ``helper`` names a row's Python
    implementation that the kernel compiles with numba; None when it cannot be.

    Decided from the row: a ufunc implementation of one or two inputs that numba knows
    (``add``, ``exp``, ``greater``, ...), a ``source`` column made only of such ufuncs
    (``sigmoid``), a float or boolean cast (``astype``, ``cast``), or an elementwise row
    whose Python implementation numba compiles (``relu``), checked when the kernel is
    compiled.
    """
    prim, params = eq.prim, eq.params
    impl = prim.impl
    if isinstance(impl, np.ufunc):
        name = impl.__name__
        if (impl.nout == 1 and impl.nin in (1, 2) and name in NUMBA_UFUNCS
                and not params and getattr(np, name, None) is impl):
            if name in _OPERATORS:  # the same IEEE operation, and cheaper for numba to type
                return _OPERATORS[name].format(*args), None
            return f"{_MATH.get(name, 'np.' + name)}({', '.join(args)})", None
        return None
    if prim.name in ("astype", "cast") and set(params) == {"dtype"}:
        target = _kind(np.empty(0, params["dtype"]))
        if target is None:
            return None
        return (f"({args[0]} != 0)" if target == "b1" else f"{_DTYPES[target]}({args[0]})"), None
    if not prim.elementwise:
        return None
    rendered = {k: _literal(v, dtype) if not isinstance(v, str) else None
                for k, v in params.items()}
    if any(v is None and params[k] is not None for k, v in rendered.items()):
        return None
    rendered = {k: "None" if v is None else v for k, v in rendered.items()}
    if prim.source is not None:
        from ._primitive import SourceCall
        try:
            code = prim.source(SourceCall(list(args), rendered, [None] * len(args),
                                          dict(params)))
        except Exception:  # a source column that needs the values: not for a loop
            return None
        names = {a for a in args if a.isidentifier()}
        return (code, None) if _valid_scalar_code(code, names) else None
    try:
        inspect.getsource(impl)
    except (OSError, TypeError):
        return None
    helper = f"gg_{prim.name}"
    call = ", ".join(list(args) + [f"{k}={v}" for k, v in rendered.items()])
    return f"{helper}({call})", helper


# --- grouping lines into runs -----------------------------------------------------------


class _Line:
    """One equation and what a loop needs to know about it."""

    def __init__(self, eq: Equation, value: Any):
        self.eq = eq
        self.value = value


def _is_numeric_array(x: Any) -> bool:
    return is_numpy_array(x) or isinstance(x, np.generic)


def _arg_value(a: Any) -> Any:
    return a.value if isinstance(a, JitTracer) else a


def fusable(eq: Equation, value: Any) -> bool:
    """The line computes an array no larger than ``max_size`` elementwise,
    from numbers and arrays of the dtypes a loop handles."""
    if type(value) is not np.ndarray or value.ndim == 0 or _kind(value) is None:
        return False
    if value.size > max_size(eq) or eq.params and any(
            isinstance(v, JitTracer) for v in eq.params.values()):
        return False
    for a in eq.args:
        v = _arg_value(a)
        if _is_numeric_array(v):
            if _kind(v) is None or v.ndim > value.ndim:
                return False
            if isinstance(a, JitTracer) or v.ndim:
                continue
        if _literal(v, None) is None and not _is_numeric_array(v):
            return False
    dummy = [f"x{i}" for i in range(len(eq.args))]
    return scalar_form(eq, dummy, _kind(value)) is not None


def max_size(eq: Equation) -> int:
    """The largest array a loop computing this line beats NumPy on (measured)."""
    impl = eq.prim.impl
    if isinstance(impl, np.ufunc):
        return MAX_FUSED_SIZE_LIBM if impl.__name__ in LIBM else MAX_FUSED_SIZE
    if eq.prim.name in ("astype", "cast"):
        return MAX_FUSED_SIZE
    return MAX_FUSED_SIZE_LIBM  # a source column or an implementation: assume libm calls


def find_runs(equations: list[Equation], values: dict[str, Any]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of at least ``MIN_RUN`` consecutive fusable lines
    with one output shape."""
    runs = []
    start, shape = None, None
    for i, eq in enumerate(equations + [None]):
        value = values.get(eq.out) if eq is not None else None
        ok = eq is not None and fusable(eq, value)
        if ok and start is not None and value.shape == shape:
            continue
        if start is not None and i - start >= MIN_RUN:
            runs.append((start, i))
        start, shape = (i, value.shape) if ok else (None, None)
    return runs


# --- one kernel ---------------------------------------------------------------------------


class Kernel:
    """The generated loop of one run: its source, its arguments and results (program
    variables or constants' names) and, once built, the compiled function."""

    def __init__(self, source: str, name: str, arg_names: list[str], out_names: list[str],
                 arg_values: list[Any], helpers: dict[str, Callable]):
        self.source = source
        self.name = name
        self.arg_names = arg_names
        self.out_names = out_names
        self.arg_values = arg_values
        self.helpers = helpers
        self.function: Callable | None = None
        self.pattern: list[list[str] | str] = [[v] for v in out_names]  # how results unpack


def make_kernel(lines: list[Equation], values: dict[str, Any], rename: dict[str, str],
                needed_after: set[str], renderer: Any,
                stacked: dict[str, tuple[str, int, Any]] | None = None) -> Kernel | None:
    """The loop of one run. ``stacked`` maps results of earlier loops that are rows of a
    stack to ``(stack name, row, stack value)``: the loop reads the row from the stack
    instead of being handed each row as an array of its own."""
    stacked = stacked or {}
    shape = values[lines[0].out].shape
    idx = [f"i{k}" for k in range(len(shape))]
    arg_names: list[str] = []
    arg_values: list[Any] = []
    loads: list[str] = []
    hoisted: list[str] = []
    local: dict[str, str] = {}  # program variable or constant name -> scalar expression
    body: list[str] = []
    helpers: dict[str, Callable] = {}

    def where(value: Any) -> list[str]:
        """The loop indices that read ``value``'s element, broadcasting it to the run."""
        off = len(shape) - value.ndim
        return [("0" if n == 1 and shape[off + j] != 1 else idx[off + j])
                for j, n in enumerate(value.shape)]

    def read(a: Any, dtype: str | None) -> str | None:
        if isinstance(a, JitTracer):
            var = rename.get(a.var, a.var)
            if var in local:
                return local[var]
            name, value = var, a.value
            if var in stacked:
                stack, row, value = stacked[var]
                if stack in local:
                    rows = local[stack]
                else:
                    rows = local[stack] = f"p{len(arg_names)}"
                    arg_names.append(stack)
                    arg_values.append(value)
                scalar = f"x{len(arg_names)}_{row}"
                loads.append(f"{scalar} = {rows}[{', '.join([str(row), *where(value[0])])}]")
                local[var] = scalar
                return scalar
        else:
            lit = _literal(a, dtype) if not _is_numeric_array(a) else None
            if lit is not None:
                return lit
            if isinstance(a, np.generic) or (is_numpy_array(a) and a.ndim == 0):
                lit = _literal(a[()] if is_numpy_array(a) else a, _kind(a))
                if lit is None:
                    return None
                return lit
            if not is_numpy_array(a):
                return None
            name, value = renderer.constant(a), a
        p = f"p{len(arg_names)}"
        arg_names.append(name)
        arg_values.append(value)
        scalar = f"x{len(arg_names) - 1}"
        if isinstance(value, np.generic):
            hoisted.append(f"    {scalar} = {p}")
        elif value.ndim == 0:
            hoisted.append(f"    {scalar} = {p}[()]")
        else:
            index = where(value)
            loads.append(f"{scalar} = {p}[{', '.join(index)}]")
        local[name] = scalar
        return scalar

    kinds_of: dict[str, str] = {}
    for k, eq in enumerate(lines):
        dtype = _kind(values[eq.out])
        arrays = [_arg_value(a) for a in eq.args if _is_numeric_array(_arg_value(a))]
        work = np.result_type(*arrays) if arrays else None
        work_code = _kind(np.empty(0, work)) if work is not None else None
        lit_dtype = work_code if work_code in ("f4", "f8") else None
        args = [read(a, lit_dtype) for a in eq.args]
        if any(a is None for a in args):
            return None
        form = scalar_form(eq, args, lit_dtype or dtype)
        if form is None:
            return None
        code, helper = form
        if helper is not None:
            helpers[helper] = eq.prim.impl
        t = f"t{k}"
        # A cast to the line's dtype only where the loop's scalar types could differ
        # from NumPy's (mixed dtypes, booleans in arithmetic).
        kinds = {kinds_of.get(a.var, _kind(a.value)) if isinstance(a, JitTracer) else _kind(a)
                 for a in eq.args if isinstance(a, JitTracer) or _is_numeric_array(a)}
        same = kinds == {dtype} and helper is None
        body.append(f"{t} = {code}" if dtype == "b1" or same
                    else f"{t} = {_DTYPES[dtype]}({code})")
        local[eq.out] = t
        kinds_of[eq.out] = dtype
    outs = [eq.out for eq in lines if eq.out in needed_after]
    # Small results of one dtype are rows of one array (one allocation, one object handed
    # back to Python: boxing each small array costs more than computing it); the caller
    # unpacks the rows. Large results stay arrays of their own, freed one by one.
    size = int(np.prod(shape))
    groups: dict[str, list[str]] = {}
    for var in outs:
        kind = _kind(values[var])
        key = kind if size * values[var].itemsize < PACK_BYTES else var
        groups.setdefault(key, []).append(var)
    loop_indent = "    " * (len(shape) + 1)
    src = ["def kernel(" + ", ".join(f"p{i}" for i in range(len(arg_names))) + "):"]
    pattern: list[list[str] | str] = []
    stores = []
    for j, (key, members) in enumerate(groups.items()):
        dtype = _DTYPES[_kind(values[members[0]])]
        if key in _DTYPES and len(members) > 1:  # a stack of rows
            src.append(f"    o{j} = np.empty({(len(members), *shape)!r}, {dtype})")
            stores += [f"o{j}[{', '.join([str(r), *idx])}] = {local[v]}"
                       for r, v in enumerate(members)]
            pattern.append(members)
        else:
            src.append(f"    o{j} = np.empty({tuple(shape)!r}, {dtype})")
            stores.append(f"o{j}[{', '.join(idx)}] = {local[members[0]]}")
            pattern.append(members[0])
    src += hoisted
    for d, n in enumerate(shape):
        src.append("    " * (d + 1) + f"for {idx[d]} in range({n}):")
    src += [loop_indent + line for line in loads + body + stores]
    src.append("    return (" + "".join(f"o{j}, " for j in range(len(groups))) + ")")
    header = ["import math", "", "import numba", "import numpy as np", ""]
    for helper, impl in sorted(helpers.items()):
        # The implementation's source is part of the file (so of its hash): a changed row
        # never reuses a stale compiled kernel.
        text = "\n".join("# " + line for line in inspect.getsource(impl).splitlines())
        header += [text, f"{helper} = numba.njit(_HELPERS[{helper!r}])", ""]
    header.append("@numba.njit(cache=True, nogil=True, error_model='numpy')")
    source = "\n".join(header + src) + "\n"
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    kernel = Kernel(source, f"gg_kernel_{digest}", arg_names, outs, arg_values, helpers)
    kernel.pattern = pattern
    return kernel


def build(kernel: Kernel) -> bool:
    """Write the kernel's module (once), import it, and compile it for the traced
    argument types (from numba's disk cache when it has them). False if numba cannot."""
    import numba

    directory = cache_dir()
    path = os.path.join(directory, kernel.name + ".py")
    try:
        if not os.path.exists(path):
            os.makedirs(directory, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(kernel.source)
            os.replace(tmp, path)  # atomic: a concurrent writer writes the same bytes
    except OSError:  # no writable cache directory: the run stays NumPy
        return False
    module = sys.modules.get(kernel.name)
    try:
        if module is None:
            spec = importlib.util.spec_from_file_location(kernel.name, path)
            module = importlib.util.module_from_spec(spec)
            module._HELPERS = kernel.helpers
            spec.loader.exec_module(module)
            sys.modules[kernel.name] = module
        function = module.kernel
        function.compile(tuple(numba.typeof(v) for v in kernel.arg_values))
    except Exception:  # numba cannot compile a helper or a type: this run stays NumPy
        sys.modules.pop(kernel.name, None)
        return False
    kernel.function = function
    return True


# --- the program --------------------------------------------------------------------------


def fuse(equations: list[Equation], rename: dict[str, str], values: dict[str, Any],
         keep: set[str], renderer: Any) -> tuple[dict[int, tuple[int, Kernel]], list[Kernel]]:
    """The kernels of a program: ``{start: (stop, kernel)}`` for each run compiled.

    ``keep`` holds the variables needed after the program (its outputs).
    """
    used_at: dict[str, list[int]] = {}
    for i, eq in enumerate(equations):
        for v in inputs_of(eq):
            used_at.setdefault(rename.get(v, v), []).append(i)
    fused: dict[int, tuple[int, Kernel]] = {}
    kernels: list[Kernel] = []
    stacked: dict[str, tuple[str, int, Any]] = {}
    for start, stop in find_runs(equations, values):
        lines = equations[start:stop]
        needed = {eq.out for eq in lines
                  if eq.out in keep or any(i >= stop for i in used_at.get(eq.out, ()))}
        kernel = make_kernel(lines, values, rename, needed, renderer, stacked)
        if kernel is None or not kernel.out_names or not build(kernel):
            continue
        fused[start] = (stop, kernel)
        kernels.append(kernel)
        for j, entry in enumerate(kernel.pattern):
            if not isinstance(entry, str):  # rows of one array: later loops read the rows
                name = f"stack{len(kernels)}_{j}"
                first = values[entry[0]]
                value = np.empty((len(entry), *first.shape), first.dtype)
                kernel.pattern[j] = (name, entry)
                stacked.update((v, (name, r, value)) for r, v in enumerate(entry))
    return fused, kernels


def program_lines(equations: list[Equation], fused: dict[int, tuple[int, Kernel]],
                  render_line: Callable[[int], str], dead: dict[int, list[str]],
                  namespace: dict[str, Any], keep: set[str]) -> list[str]:
    """The body of the program that runs: each fused run as one kernel call, the other
    lines as in the NumPy program (``render_line(i)``), and the NumPy program's ``del`` of
    large intermediates after their last use (``dead``)."""
    in_runs = {j for start, (stop, _) in fused.items() for j in range(start, stop)}
    outside = set(keep) | {v for j, eq in enumerate(equations) if j not in in_runs
                           for v in inputs_of(eq)}
    stacked_vars = {v for _, k in fused.values() for e in k.pattern if not isinstance(e, str)
                    for v in e[1]}
    made: set[str] = set()
    lines = []
    i = 0
    while i < len(equations):
        if i not in fused:
            lines.append(render_line(i))
            ended = dead.get(i, [])
            i += 1
        else:
            stop, kernel = fused[i]
            name = f"nk{len([n for n in namespace if n.startswith('nk')])}"
            namespace[name] = kernel.function
            outs = ", ".join(v if isinstance(v, str) else v[0] for v in kernel.pattern) + ","
            lines.append(f"    {outs} = {name}({', '.join(kernel.arg_names)})")
            for entry in kernel.pattern:
                if not isinstance(entry, str):  # rows that NumPy lines read, as views
                    for r, v in enumerate(entry[1]):
                        if v in outside:
                            lines.append(f"    {v} = {entry[0]}[{r}]")
                            made.add(v)
            inside = {eq.out for eq in equations[i:stop]} - set(kernel.out_names)
            ended = [v for j in range(i, stop) for v in dead.get(j, []) if v not in inside]
            i = stop
        ended = [v for v in ended if v in made or v not in stacked_vars]
        if ended:
            lines.append(f"    del {', '.join(ended)}")
    return lines


def describe(runner: str, kernels: list[Kernel]) -> str:
    """The program that runs (one call per fused run) followed by each kernel's source."""
    parts = ["# backend='numba': the program that runs; each nkN is one fused loop", runner]
    for n, kernel in enumerate(kernels):
        path = os.path.join(cache_dir(), kernel.name + ".py")
        parts.append(f"# nk{n}: {path}\n{kernel.source}")
    return "\n".join(parts)
