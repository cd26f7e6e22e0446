"""Every merge method as data (``methods.spec``): its parameters, what inputs it takes, and where its kernel lives.

The CLI's ``methods`` command, the config validator, the planner and the
wizard's forms all read this one table. It imports no torch: kernels are
named by ``module:function`` and loaded only when a merge runs, so listing
methods or validating a config stays instant on a login node.

Names, parameters and defaults follow mergekit, so published recipes run
unchanged. Where we differ it is written in the parameter's help.
"""

from __future__ import annotations

from tui_merge.errors import BadInputError, suggestion
from tui_merge.methods.spec import MethodSpec, ParamSpec


def _weight(default: float = 1.0) -> ParamSpec:
    return ParamSpec(
        "weight", "float", default, "this model's share (relative when normalize is on); defaults to 1", "model"
    )


_DENSITY = ParamSpec("density", "float", 1.0, "fraction of each task vector to keep", "model", 0.0, 1.0, suggested=0.5)
_BREADCRUMBS_DENSITY = ParamSpec(
    "density", "float", 1.0, "fraction of each task vector to keep", "model", 0.0, 1.0, suggested=0.9
)
"""Breadcrumbs drops the largest values (gamma) as well; its paper keeps 90% of the rest."""
_LAMBDA = ParamSpec("lambda", "float", 1.0, "scale of the merged task vector added to the base")
_INT8_MASK = ParamSpec(
    "int8_mask", "bool", False, "accepted for mergekit recipes; masks are always exact here", hidden=True
)
_CONSENSUS = ParamSpec(
    "consensus_method", "choice", "sum",
    "sum: elect the sign of the weighted sum; count: the sign most models have", choices=("sum", "count"),
    hidden=True,
)  # fmt: skip


def _normalize(default: bool) -> ParamSpec:
    return ParamSpec("normalize", "bool", default, "divide by the sum of the weights that contribute")


def _rescale(default: bool) -> ParamSpec:
    return ParamSpec(
        "rescale", "bool", default, "scale the kept values so each task vector keeps its L1 norm (as mergekit does)"
    )


def _task_arithmetic_family(
    name: str,
    summary: str,
    *,
    extra: tuple[ParamSpec, ...],
    normalize: bool,
    rescale: bool | None,
    random: bool,
    ref: str,
    blocks: str = "",
    elementwise: bool = False,
) -> MethodSpec:
    params = (_weight(), *extra, _LAMBDA, _normalize(normalize))
    if rescale is not None:
        params += (_rescale(rescale),)
    return MethodSpec(
        name, summary, f"tui_merge.methods.task_arithmetic:{name}", (*params, _INT8_MASK), "required", 1,
        random=random, reference=ref, elementwise=elementwise, blocks=blocks,
    )  # fmt: skip


_GAMMA = ParamSpec("gamma", "float", 0.01, "fraction of the largest task-vector values to drop", "model", 0.0, 1.0)
_EPSILON = ParamSpec(
    "epsilon", "float", 0.15, "keep probabilities spread from density-epsilon to density+epsilon by magnitude",
    "model", 0.0, 0.5,
)  # fmt: skip

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "linear", "weighted average of the models", "tui_merge.methods.linear:linear",
        (_weight(), _normalize(True)), "none", 1, reference="https://arxiv.org/abs/2203.05482", elementwise=True,
    ),
    MethodSpec(
        "slerp", "spherical interpolation between the base (t=0) and one other model (t=1)",
        "tui_merge.methods.spherical:slerp",
        (ParamSpec("t", "float", None, "0 gives the base, 1 the other model", "global", 0.0, 1.0, suggested=0.5),),
        "required", 1, 1, blocks="tui_merge.methods.spherical:SlerpBlocks",
    ),
    MethodSpec(
        "nuslerp", "spherical interpolation of two models by weight, of task vectors when a base is given",
        "tui_merge.methods.spherical:nuslerp",
        (
            _weight(),
            ParamSpec("nuslerp_flatten", "bool", True, "treat each tensor as one vector"),
            ParamSpec("nuslerp_row_wise", "bool", False, "without flatten: interpolate rows instead of columns"),
        ),
        "optional", 2, 2, blocks="tui_merge.methods.spherical:NuslerpBlocks",
    ),
    MethodSpec(
        "multislerp", "spherical barycentre of several models (of task vectors when a base is given)",
        "tui_merge.methods.spherical:multislerp",
        (
            _weight(),
            ParamSpec("normalize_weights", "bool", True, "scale the weights to sum to 1"),
            ParamSpec("eps", "float", 1e-8, "numerical floor", "global", 0.0),
        ),
        "optional", 1, blocks="tui_merge.methods.spherical:MultislerpBlocks",
    ),
    MethodSpec(
        "karcher", "Riemannian (Karcher) mean of the models on the hypersphere", "tui_merge.methods.spherical:karcher",
        (
            ParamSpec("max_iter", "int", 10, "iterations at most", "global", 1),
            ParamSpec("tol", "float", 1e-5, "convergence tolerance", "global", 0.0),
        ),
        "none", 1, blocks="tui_merge.methods.spherical:KarcherBlocks",
    ),
    _task_arithmetic_family(
        "task_arithmetic", "base plus the weighted sum of task vectors", extra=(), normalize=False, rescale=None,
        random=False, ref="https://arxiv.org/abs/2212.04089", elementwise=True,
    ),
    _task_arithmetic_family(
        "ties", "keep the largest task-vector values, elect signs, average what agrees", extra=(_DENSITY, _CONSENSUS),
        normalize=True, rescale=None, random=False, ref="https://arxiv.org/abs/2306.01708",
        blocks="tui_merge.methods.task_arithmetic:TiesBlocks",
    ),
    _task_arithmetic_family(
        "dare_ties", "drop task-vector values at random, rescale, elect signs", extra=(_DENSITY, _CONSENSUS),
        normalize=False,
        rescale=True, random=True, ref="https://arxiv.org/abs/2311.03099",
        blocks="tui_merge.methods.task_arithmetic:RandomDropBlocks",
    ),
    _task_arithmetic_family(
        "dare_linear", "drop task-vector values at random, rescale, sum", extra=(_DENSITY,), normalize=False,
        rescale=True, random=True, ref="https://arxiv.org/abs/2311.03099",
        blocks="tui_merge.methods.task_arithmetic:RandomDropLinearBlocks",
    ),
    _task_arithmetic_family(
        "breadcrumbs", "drop the largest and the smallest task-vector values, sum",
        extra=(_BREADCRUMBS_DENSITY, _GAMMA),
        normalize=False, rescale=False, random=False, ref="https://arxiv.org/abs/2312.06795",
        blocks="tui_merge.methods.task_arithmetic:BreadcrumbsBlocks",
    ),
    _task_arithmetic_family(
        "breadcrumbs_ties", "breadcrumbs pruning with TIES sign election",
        extra=(_BREADCRUMBS_DENSITY, _GAMMA, _CONSENSUS),
        normalize=False, rescale=False, random=False, ref="https://arxiv.org/abs/2312.06795",
        blocks="tui_merge.methods.task_arithmetic:BreadcrumbsTiesBlocks",
    ),
    _task_arithmetic_family(
        "della", "drop by magnitude-ranked probabilities (MAGPRUNE), rescale, elect signs",
        extra=(_DENSITY, _EPSILON, _CONSENSUS), normalize=True, rescale=True, random=True,
        ref="https://arxiv.org/abs/2406.11617", blocks="tui_merge.methods.task_arithmetic:DellaBlocks",
    ),
    _task_arithmetic_family(
        "della_linear", "MAGPRUNE, rescale, sum", extra=(_DENSITY, _EPSILON), normalize=False, rescale=True,
        random=True, ref="https://arxiv.org/abs/2406.11617",
        blocks="tui_merge.methods.task_arithmetic:DellaLinearBlocks",
    ),
    MethodSpec(
        "sce", "keep high-variance positions, weight task vectors by their energy, elect signs",
        "tui_merge.methods.sce:sce",
        (ParamSpec("select_topk", "float", 1.0, "fraction of positions kept by variance", "global", 0.0, 1.0),
         _INT8_MASK),
        "required", 1, reference="https://arxiv.org/abs/2408.07990", blocks="tui_merge.methods.sce:SceBlocks",
    ),
    MethodSpec(
        "model_stock", "interpolate the base and the models' average by the angle between task vectors",
        "tui_merge.methods.model_stock:model_stock",
        (ParamSpec("filter_wise", "bool", False, "one ratio per row instead of per tensor"),),
        "required", 2, reference="https://arxiv.org/abs/2403.19522",
        blocks="tui_merge.methods.model_stock:ModelStockBlocks",
    ),
    MethodSpec(
        "nearswap", "take the other model's values where they are close to the base's",
        "tui_merge.methods.nearswap:nearswap",
        (ParamSpec("t", "float", None, "closeness scale: weight = t / |base - other|, clamped to 1", "global", 0.0,
                   suggested=0.5),),
        "required", 1, 1, elementwise=True,
    ),
    MethodSpec(
        "ram", "average task-vector values where models overlap, keep unique ones whole", "tui_merge.methods.ram:ram",
        (ParamSpec("epsilon", "float", 1e-5, "smallest change that counts", "global", 0.0),),
        "required", 1, reference="https://arxiv.org/abs/2601.13572", elementwise=True,
    ),
    MethodSpec(
        "ramplus_tl", "ram with unique values boosted by the overlap ratio", "tui_merge.methods.ram:ramplus_tl",
        (
            ParamSpec("r", "float", 0.1, "boost strength", "global", 0.0),
            ParamSpec("alpha", "float", 0.2, "cap on the overlap ratio", "global", 0.0),
            ParamSpec("epsilon", "float", 1e-5, "smallest change that counts", "global", 0.0),
        ),
        "required", 1, reference="https://arxiv.org/abs/2601.13572", blocks="tui_merge.methods.ram:RamPlusBlocks",
    ),
    MethodSpec(
        "arcee_fusion", "take the other model's changes whose importance is an outlier",
        "tui_merge.methods.arcee_fusion:arcee_fusion", (), "required", 1, 1,
        blocks="tui_merge.methods.arcee_fusion:ArceeFusionBlocks",
    ),
    MethodSpec(
        "passthrough", "copy one model's tensors, optionally scaled (layer stacking with slices)",
        "tui_merge.methods.passthrough:passthrough",
        (ParamSpec("scale", "float", 1.0, "multiply the tensor by this", "model"),),
        "none", 1, 1, elementwise=True,
    ),
    MethodSpec(
        "circuit", "priority-ordered DELLA: earlier models win sign conflicts, temperature-weighted averages",
        "tui_merge.methods.circuit:circuit",
        (
            ParamSpec("temperature", "float", 0.0, "0: each agreeing model halves the others; 1: plain average",
                      "global", 0.0, 1.0),
            ParamSpec("base_droprate", "float", 0.5, "drop rate of the highest-priority model", "global", 0.0, 1.0),
            ParamSpec("meaningful_change_threshold", "float", 2e-6, "smaller changes count as none", "global", 0.0),
            ParamSpec("epsilon", "float", 0.1, "spread of drop rates by magnitude", "global", 0.0, 1.0),
            ParamSpec("skip_rescaling", "bool", False, "keep pruned deltas unscaled"),
        ),
        "required", 1, random=True, blocks="tui_merge.methods.circuit:CircuitBlocks",
    ),
)  # fmt: skip

REGISTRY: dict[str, MethodSpec] = {method.name: method for method in METHODS}


def get_method(name: str) -> MethodSpec:
    """The method called ``name``; a misspelling gets the nearest valid name suggested."""
    if name in REGISTRY:
        return REGISTRY[name]
    normalized = name.strip().lower().replace("-", "_").replace(" ", "_")
    if normalized in REGISTRY:
        raise BadInputError(f"Unknown merge method {name!r}; did you mean {normalized!r}?")
    hint = suggestion(name, REGISTRY)
    raise BadInputError(f"Unknown merge method {name!r}{hint}{'' if hint.endswith('?') else '.'}")
