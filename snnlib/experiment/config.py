"""A run's configuration (:class:`RunConfig`): every field checked for its type and range, the random streams it
seeds, and the one-line error a run stops with (:class:`RunError`)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields

from snnlib.experiment import data as D
from snnlib.model.dropout import KINDS, check_p
from snnlib.model.network import SITES, NetworkConfig
from snnlib.model.params import MAX_SEED, ParameterError, boolean, check_mapping, choice, integer, parse_boolean, real

MAX_EPOCHS = 100_000


MAX_BATCH = 65_536


@dataclass
class RunConfig:
    """Everything that defines a run. Two runs with equal configs give equal numbers.

    ``init_seed``: seed of the initial weights (None: ``seed``). ``val_size``: the last
    ``val_size`` samples of the training split are held out as a validation set, never
    trained on (0: train on the whole split, as the paper does); ``train_subset`` then
    takes the first samples of what is left.
    """

    dataset: str = "mnist"
    variant: str = "none"
    p: float = 0.0
    time_consistent: bool = False
    site: str = "current"
    seed: int = 0
    init_seed: int | None = None
    epochs: int = 20
    train_subset: int | None = None
    test_subset: int | None = None
    val_size: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    t_enc: int = 12
    network: dict = field(default_factory=dict)  # overrides of NetworkConfig defaults

    def __post_init__(self) -> None:
        # Types first (strictly: see snnlib.model.params), then ranges; each error is one line naming the field.
        choice("dataset", self.dataset, D.DATASETS)
        choice("variant", self.variant, KINDS, "dropout kind")
        check_p(real("p", self.p))
        boolean("time_consistent", self.time_consistent)
        choice("site", self.site, SITES, "dropout site")
        self.seed = integer("seed", self.seed, 0, MAX_SEED)
        if self.init_seed is not None:
            self.init_seed = integer("init_seed", self.init_seed, 0, MAX_SEED)
        self.epochs = integer("epochs", self.epochs, 1, MAX_EPOCHS)
        self.batch_size = integer("batch_size", self.batch_size, 1, MAX_BATCH)
        self.t_enc = integer("t_enc", self.t_enc, 1)
        train_size = D.SIZES[self.dataset, "train"]
        self.val_size = integer("val_size", self.val_size, 0, train_size - 1)
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                setattr(self, name, integer(name, getattr(self, name), 1))
        if self.train_subset is not None and self.train_subset > train_size - self.val_size:
            raise ValueError(f"train_subset ({self.train_subset}) must be at most the {train_size - self.val_size} "
                             f"training samples left after the validation split")
        if self.test_subset is not None and self.test_subset > D.SIZES[self.dataset, "test"]:
            raise ValueError(f"test_subset must be at most the {D.SIZES[self.dataset, 'test']} test samples "
                             f"of {self.dataset}, got {self.test_subset}")
        real("lr", self.lr, 0, low_open=True)
        real("weight_decay", self.weight_decay, 0)
        NetworkConfig.check_overrides(self.network)
        net = self.network_config()  # validates tau, threshold, delays against T, ...
        if self.t_enc >= net.T:
            raise ValueError(f"t_enc ({self.t_enc}) must be shorter than the window T={net.T}")

    @classmethod
    def from_parameters(cls, config_extra: object = None, **params: object) -> RunConfig:
        """The config of parameters given as text-friendly values (the experiment notebook's):
        ``time_consistent`` may be the text ``true``/``false`` (papermill passes ``-p time_consistent
        false`` as a string); every other value must already have its type. ``config_extra`` (a dict)
        holds any other field; a field given both ways is refused in one line rather than left to
        Python's ``TypeError`` about a keyword given twice."""
        if config_extra is not None:
            extra = check_mapping("config_extra", config_extra)
            twice = sorted(set(extra) & set(params))
            if twice:
                raise ParameterError(f"config_extra sets {', '.join(twice)}, which the notebook takes as "
                                     f"parameter(s) of their own; pass -p {twice[0]} ... instead")
            params = {**params, **extra}
        if "time_consistent" in params:
            params["time_consistent"] = parse_boolean("time_consistent", params["time_consistent"])
        unknown = sorted(set(params) - {f.name for f in fields(cls)})
        if unknown:
            raise ParameterError(f"unknown run parameter(s) {', '.join(unknown)}; allowed: "
                                 f"{', '.join(f.name for f in fields(cls))}")
        return cls(**params)  # type: ignore[arg-type]

    def network_config(self) -> NetworkConfig:
        in_features = 784 if self.dataset == "mnist" else 3072
        return NetworkConfig(**{**self.network, "in_features": in_features, "dropout": self.variant,
                                "p": self.p, "time_consistent": self.time_consistent, "site": self.site})

    @property
    def weights_seed(self) -> int:
        """The seed of the initial weights."""
        return self.seed if self.init_seed is None else self.init_seed

    def to_dict(self) -> dict:
        d = asdict(self)
        d["network"] = self.network_config().to_dict()  # record every value, not just overrides
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The config of a record; keys a record lacks (written before they existed) take
        their defaults, which are the behaviour of the code that wrote it."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})



def config_difference(saved: dict, config: RunConfig) -> list[str]:
    """The keys in which a record's configuration ``saved`` differs from ``config`` ([] if the
    same run). Keys the record lacks count as their defaults (see :meth:`RunConfig.from_dict`);
    a record that is not a valid configuration differs in every key."""
    wanted = config.to_dict()
    try:
        saved = RunConfig.from_dict(saved).to_dict() if isinstance(saved, dict) else {}
    except (TypeError, ValueError):
        return sorted(wanted)
    return sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))



def stream_seed(seed: int, stream: str) -> int:
    """A seed for one random stream of a run (``order``, ``masks``), derived from ``seed``:
    distinct streams of one seed are unrelated, and the same stream of a seed is always the same."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:8], "little") >> 1



class RunError(RuntimeError):
    """A run cannot start (bad input, or a folder that holds another run)."""
