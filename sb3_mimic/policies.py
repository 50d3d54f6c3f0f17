"""Policies as files: the TRPO model factory, the metadata a policy carries, saving and loading.

Every trainer (``sft``, ``dagger``, ``finetune``/``train``) makes its model with :func:`make_trpo` (or the RL
algorithms' own constructors with :func:`policy_kwargs_for`) and writes it with :func:`save_policy`.  A saved
policy is an ordinary SB3 ``.zip`` (``TRPO.load``, rl-zoo ``-i``) or a ``.pth`` torch checkpoint; both carry a
:class:`PolicyMetadata` record (clip, env id and kwargs, action mode, exploration std, who trained it) as a
plain dict in the model's ``sb3_mimic`` attribute, so the env a policy was made for can be rebuilt from it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mimic._resources import PRETRAINED_PREFIX, policy_file, pretrained_names  # noqa: F401  (re-exported)
from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv
from sb3_mimic.normalization import NormalizedObservations, normalizers_of
from sb3_mimic.version import __version__

POLICY_FORMAT = "sb3-mimic-policy/1"
#: Action std (normalised units) a saved policy explores with when RL continues from it: DeepMimic's fixed
#: exploration noise, the ``log_std_init`` of zoo_configs/.  BC's own std fits the labels' residual and is tiny.
DEFAULT_EXPLORATION_STD = 0.05


class PolicyLoadError(ValueError):
    """A saved policy cannot be loaded, or does not fit the env it is loaded for."""


@dataclass(frozen=True)
class PolicyMetadata:
    """What sb3-mimic records with a policy.  Stored flat, as a dict: the fields below plus :attr:`details`."""

    env_id: str
    """Registered env id the policy was trained on."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``gymnasium.make(env_id, ...)`` (``motion``, ``action_mode``)."""
    clip: str | None = None
    """Name of the clip the policy imitates."""
    action_mode: str = "pd_target"
    """The env's action mode."""
    trained_by: str = "unknown"
    """What wrote the policy: ``"sft"``, ``"dagger (mpc)"``, ``"finetune"``, ``"train (ppo)"``, ..."""
    exploration_std: float | None = None
    """Action std (normalised units) the policy was saved with."""
    observation_normalization: bool = False
    """Whether the network standardises its observations (:class:`~sb3_mimic.normalization.NormalizedObservations`,
    statistics inside the file)."""
    network: dict[str, Any] = field(default_factory=dict)
    """The network's ``policy_kwargs`` as plain JSON (``net_arch``, ...), without the normaliser's class."""
    details: dict[str, Any] = field(default_factory=dict)
    """The trainer's own figures (``best_val_loss``, ``rounds``, ``lookahead``, ...)."""
    format: str = POLICY_FORMAT
    version: str = __version__
    """sb3-mimic version that wrote the policy."""

    _FIELDS = ("env_id", "env_kwargs", "clip", "action_mode", "trained_by", "exploration_std",
               "observation_normalization", "network", "format", "version")

    def to_dict(self) -> dict[str, Any]:
        """The flat dict that travels inside the policy file."""
        return {**self.details, **{name: getattr(self, name) for name in self._FIELDS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyMetadata:
        """The record of a stored dict (unknown keys go to :attr:`details`)."""
        if "env_id" not in data:
            raise PolicyLoadError("the policy's sb3-mimic metadata names no env_id")
        known = {name: data[name] for name in cls._FIELDS if name in data}
        return cls(**known, details={k: v for k, v in data.items() if k not in cls._FIELDS})

    def replace(self, **changes: Any) -> PolicyMetadata:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def use_one_torch_thread() -> None:
    """Run torch on one thread: the networks are small, and a second torch thread competes with the simulation
    for the same cores."""
    th.set_num_threads(1)


def set_exploration_std(model, std: float) -> None:
    """Set the Gaussian policy's action std (state-independent ``log_std``) to ``std``."""
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"exploration std must be positive, got {std}")
    with th.no_grad():
        model.policy.log_std.fill_(math.log(std))


def policy_kwargs_for(hidden_size: int, num_layers: int, normalize: bool = False) -> dict[str, Any]:
    """``policy_kwargs`` of the MlpPolicy: ``num_layers`` layers of ``hidden_size`` for actor and critic, after
    observation normalisation (:class:`~sb3_mimic.normalization.NormalizedObservations`) when ``normalize``."""
    layers = [int(hidden_size)] * int(num_layers)
    kwargs: dict[str, Any] = {"net_arch": {"pi": list(layers), "vf": list(layers)}}
    if normalize:
        kwargs["features_extractor_class"] = NormalizedObservations
    return kwargs


def _plain_policy_kwargs(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The policy kwargs a file stores as JSON: the normaliser class is recorded in the metadata instead."""
    return {k: v for k, v in policy_kwargs.items() if k != "features_extractor_class"}


def _network_kwargs(policy_kwargs: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The policy kwargs to rebuild a stored network with: its plain kwargs, plus the normaliser if it had one."""
    kwargs = _plain_policy_kwargs(policy_kwargs)
    if meta.get("observation_normalization"):
        kwargs["features_extractor_class"] = NormalizedObservations
    return kwargs


def make_trpo(
    env: gym.Env | DummyVecEnv, hidden_size: int = 64, num_layers: int = 2, seed: int | None = 0,
    normalize: bool = False, **trpo_kwargs,
) -> TRPO:
    """A fresh sb3-contrib TRPO model (``MlpPolicy``, ``num_layers`` x ``hidden_size`` for actor and critic, CPU;
    observations standardised inside the network when ``normalize``)."""
    return TRPO(
        "MlpPolicy", env, policy_kwargs=policy_kwargs_for(hidden_size, num_layers, normalize), seed=seed,
        device="cpu", verbose=0, **trpo_kwargs,
    )


def metadata_of(model) -> PolicyMetadata | None:
    """The metadata a model carries, or ``None`` for a model sb3-mimic did not write."""
    meta = getattr(model, "sb3_mimic", None)
    return PolicyMetadata.from_dict(meta) if isinstance(meta, dict) and "env_id" in meta else None


def attach_metadata(model, metadata: PolicyMetadata) -> None:
    """Attach ``metadata`` to ``model`` (saved with it by :func:`save_policy` or ``model.save``), with the model's
    own network description (:attr:`PolicyMetadata.network`, :attr:`PolicyMetadata.observation_normalization`)."""
    model.sb3_mimic = metadata.replace(
        observation_normalization=bool(normalizers_of(model.policy)), network=_plain_policy_kwargs(model.policy_kwargs)
    ).to_dict()


def save_policy(model: TRPO, path: str | Path, metadata: PolicyMetadata) -> Path:
    """Save ``model`` with ``metadata`` as an SB3 ``.zip`` (any other suffix gets ``.zip``) or a ``.pth`` checkpoint.

    Writes to a temporary file first, then renames it, so an interrupted save never corrupts an existing file.
    """
    path = Path(path)
    attach_metadata(model, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pth":
        tmp = path.with_name(f".{path.name}.tmp")
        th.save(
            {
                "format": POLICY_FORMAT,
                "metadata": model.sb3_mimic,
                "policy_kwargs": _plain_policy_kwargs(model.policy_kwargs),
                "state_dict": model.policy.state_dict(),
            },
            tmp,
        )
    else:
        if path.suffix != ".zip":
            path = path.with_name(path.name + ".zip")
        tmp = path.with_name(f".{path.stem}.tmp.zip")
        model.save(tmp)
    os.replace(tmp, path)
    return path


#: What a foreign ``.zip`` needs to be loaded: SB3's own loader, which unpickles code stored in the file.
_TRUST_HINT = (
    "it was not written by sb3-mimic, and loading it would unpickle code stored in the file; load it only if it comes "
    "from a source you trust, with trust_pickle=True (command line: --trust_pickle)"
)


def _plain(value: Any) -> bool:
    """Whether a value of an SB3 ``data`` file is plain JSON, not a pickled object."""
    if isinstance(value, dict):
        return ":serialized:" not in value and all(_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return True


def _read_zip_safely(path: Path) -> dict[str, Any] | None:
    """An sb3-mimic ``.zip`` read as JSON and tensors only (never unpickled), in the ``.pth`` checkpoint's layout;
    ``None`` when the zip is not one sb3-mimic wrote."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
            meta, policy_kwargs = data.get("sb3_mimic"), data.get("policy_kwargs", {})
            if isinstance(meta, dict) and meta.get("observation_normalization") and isinstance(meta.get("network"), dict):
                policy_kwargs = meta["network"]  # SB3 pickles kwargs that hold a class: never unpickled, read as JSON
            if not (isinstance(meta, dict) and "env_id" in meta and _plain(meta) and _plain(policy_kwargs)):
                return None
            state_dict = th.load(io.BytesIO(archive.read("policy.pth")), map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, RuntimeError, EOFError) as err:
        raise PolicyLoadError(f"{path} is not a readable SB3 model zip ({type(err).__name__}: {err})") from err
    return {"format": POLICY_FORMAT, "metadata": meta, "policy_kwargs": policy_kwargs, "state_dict": state_dict}


def resolve_policy_path(path: str | Path) -> Path:
    """The file a policy argument names: a path, or ``pretrained:NAME`` for a shipped policy."""
    try:
        return policy_file(path)
    except FileNotFoundError as err:
        raise PolicyLoadError(str(err)) from err


def pretrained_evaluation(name: str) -> dict[str, Any]:
    """The evaluation that ships beside ``pretrained:NAME`` (``NAME.json``: how it was trained and measured)."""
    path = resolve_policy_path(PRETRAINED_PREFIX + name).with_suffix(".json")
    return json.loads(path.read_text())


def load_pretrained(name: str, env: gym.Env | DummyVecEnv | None = None) -> TRPO:
    """Load the shipped policy ``name`` (see :func:`pretrained_names`), e.g. ``load_pretrained("walk")``; its env is
    made from its metadata unless ``env`` is given."""
    return load_policy(PRETRAINED_PREFIX + name, env)


def _read(path: str | Path, trust_pickle: bool = False) -> tuple[Path, dict[str, Any] | TRPO]:
    """The checkpoint dict of a ``.pth`` policy or of an sb3-mimic ``.zip`` (JSON and tensors only), or, for a
    foreign ``.zip`` with ``trust_pickle``, the TRPO model SB3 loads from it (without an env)."""
    path = resolve_policy_path(path)
    if not path.is_file():
        raise PolicyLoadError(f"policy file {path} does not exist")
    if path.suffix == ".pth":
        try:
            checkpoint = th.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise PolicyLoadError(
                f"{path} is not a readable torch checkpoint ({type(err).__name__}); a .pth policy is written by "
                "`sb3-mimic sft --save_path NAME.pth`"
            ) from err
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != POLICY_FORMAT:
            raise PolicyLoadError(f"{path} is not an sb3-mimic policy checkpoint (made by `sb3-mimic sft`)")
        return path, checkpoint
    safe = _read_zip_safely(path)
    if safe is not None:
        return path, safe
    if not trust_pickle:
        raise PolicyLoadError(f"{path}: {_TRUST_HINT}")
    try:
        return path, TRPO.load(path, device="cpu")
    except Exception as err:
        raise PolicyLoadError(f"{path} is not a readable SB3 TRPO model ({type(err).__name__}: {err})") from err


def read_metadata(path: str | Path, trust_pickle: bool = False) -> PolicyMetadata | None:
    """The metadata of a saved policy (``None`` for a foreign zip, which needs ``trust_pickle``)."""
    _, saved = _read(path, trust_pickle)
    if isinstance(saved, dict):
        return PolicyMetadata.from_dict(saved["metadata"])
    return metadata_of(saved)


def load_policy(path: str | Path, env: gym.Env | DummyVecEnv | None = None, trust_pickle: bool = False) -> TRPO:
    """Load a policy saved by :func:`save_policy` (``.zip`` or ``.pth``) as a TRPO model.

    An sb3-mimic file is read as JSON and tensors only (``weights_only``) and the model is rebuilt from its
    metadata, so loading it runs no code from the file. A zip that sb3-mimic did not write loads only with
    ``trust_pickle=True``, through SB3's own loader, which unpickles objects stored in the file.

    :param path: the file
    :param env: the env to attach; if None, the env recorded in the metadata is made
    :param trust_pickle: allow SB3's unpickling loader for a foreign zip
    :raises PolicyLoadError: missing or unreadable file, a foreign zip without ``trust_pickle``, or a policy whose
        spaces do not match ``env``
    """
    path, saved = _read(path, trust_pickle)
    if isinstance(saved, dict):
        meta = saved["metadata"]
        env = env if env is not None else make_env_from_metadata(PolicyMetadata.from_dict(meta))
        _check_spaces(path, env, saved["state_dict"])
        model = TRPO("MlpPolicy", env, policy_kwargs=_network_kwargs(saved["policy_kwargs"], meta), device="cpu",
                     verbose=0)
        try:
            model.policy.load_state_dict(saved["state_dict"])
        except RuntimeError as err:
            raise PolicyLoadError(f"{path} does not fit its recorded network ({err})") from err
        model.sb3_mimic = meta
        return model
    if env is None:
        env = make_env_from_metadata(metadata_of(saved))
    try:
        return TRPO.load(path, env=env, device="cpu")
    except ValueError as err:
        raise PolicyLoadError(f"{path} does not fit this env: {err}") from err


def _check_spaces(path: Path, env, state_dict: dict[str, th.Tensor]) -> None:
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    first = next(v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2)
    if first.shape[1] != obs_dim or state_dict["log_std"].shape[0] != act_dim:
        raise PolicyLoadError(
            f"{path} does not fit this env: it was trained for observations of size {first.shape[1]} and "
            f"{state_dict['log_std'].shape[0]} actions, but this env has {obs_dim} and {act_dim}"
        )


def make_env_from_metadata(meta: PolicyMetadata | None) -> gym.Env:
    """Make the env a policy was trained for, from its metadata."""
    if meta is None:
        raise PolicyLoadError(
            "this policy carries no sb3-mimic metadata (it was not written by sb3-mimic); pass the env (or --mocap)"
        )
    return gym.make(meta.env_id, **meta.env_kwargs)


def check_policy_fits(model: TRPO, env: gym.Env) -> None:
    """Refuse a policy whose spaces or action mode differ from ``env``'s, with a clear message."""
    base = env.unwrapped
    meta = metadata_of(model)
    if model.observation_space.shape != env.observation_space.shape or model.action_space.shape != env.action_space.shape:
        raise PolicyLoadError(
            f"the policy expects observations {model.observation_space.shape} and actions {model.action_space.shape}, "
            f"the env gives {env.observation_space.shape} and takes {env.action_space.shape}"
        )
    if isinstance(base, MimicHumanoidEnv) and meta is not None and meta.action_mode != base.action_mode:
        raise PolicyLoadError(
            f"the policy was trained with action_mode={meta.action_mode!r} but the env uses "
            f"{base.action_mode!r}; pass the matching --action_mode"
        )
