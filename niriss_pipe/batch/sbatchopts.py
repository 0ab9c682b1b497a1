"""Which sbatch options a ``--sbatch`` value sets, however it is spelled, so the options the
batch manages cannot come in through a short form (``-oPATH``, ``-a1-3``), a cluster of short
flags (``-Qo...``) or a unique prefix of a long name (``--arr=1-3``), as getopt_long takes them.

The table is sbatch's getopt_long table (``common_options`` in SLURM's src/common/slurm_opt.c,
the entries sbatch uses) over releases 20.11 to 25.11: a name with ``=`` takes a value, with
``[=]`` an optional one (in some release), bare takes none. The short options are the same in
all of them. Names not in the table pass (a site's SPANK plugins add options); prefixes are
matched against the table as getopt_long does.
"""

from __future__ import annotations

from dataclasses import dataclass

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, prog, shown

_LONG = """
account= acctg-freq= array= autocomplete= batch= bb= bbf= begin= chdir= cluster=
cluster-constraint= clusters= comment= consolidate-segments constraint= container=
container-id= context= contiguous core-spec= cores-per-socket= cpu-freq= cpus-per-gpu=
cpus-per-task= deadline= delay-boot= dependency= distribution= error= exclude= exclusive[=]
export= export-file= external extra= extra-node-info= get-user-env[=] gid= gpu-bind=
gpu-freq= gpus= gpus-per-node= gpus-per-socket= gpus-per-task= gres= gres-flags= help hint=
hold ignore-pbs input= job-name= kill-on-invalid-dep= licenses= mail-type= mail-user=
mcs-label= mem= mem-bind= mem-per-cpu= mem-per-gpu= mem-update= mincpus= network= nice[=]
no-kill[=] no-requeue nodefile= nodelist= nodes= ntasks= ntasks-per-core= ntasks-per-gpu=
ntasks-per-node= ntasks-per-socket= ntasks-per-tres= oom-kill-step[=] open-mode= output=
overcommit oversubscribe parsable partition= power= prefer= priority= profile= propagate[=]
qos= quiet reboot requeue[=] reservation= resources= resv-ports[=] runtime= segment= signal=
sockets-per-node= spread-job spread-segments stepmgr switches= tasks-per-node= test-only
thread-spec= threads-per-core= time= time-min= tmp= tres-bind= tres-per-task= uid= usage
use-min-nodes verbose version wait wait-all-nodes= wckey= wrap=
"""
_SHORT = {"A": "account", "B": "extra-node-info", "C": "constraint", "D": "chdir",
          "F": "nodefile", "G": "gpus", "H": "hold", "J": "job-name", "L": "licenses",
          "M": "clusters", "N": "nodes", "O": "overcommit", "Q": "quiet", "S": "core-spec",
          "V": "version", "W": "wait", "a": "array", "b": "begin", "c": "cpus-per-task",
          "d": "dependency", "e": "error", "h": "help", "i": "input", "k": "no-kill",
          "m": "distribution", "n": "ntasks", "o": "output", "p": "partition", "q": "qos",
          "s": "oversubscribe", "t": "time", "v": "verbose", "w": "nodelist", "x": "exclude"}
REQUIRED, OPTIONAL, NONE = "required", "optional", "none"


def _table(text: str) -> dict[str, str]:
    table = {}
    for item in text.split():
        if item.endswith("[=]"):
            table[item[:-3]] = OPTIONAL
        elif item.endswith("="):
            table[item[:-1]] = REQUIRED
        else:
            table[item] = NONE
    return table


LONG = _table(_LONG)
SHORT = {letter: (name, LONG[name]) for letter, name in _SHORT.items()}

_LOGS = "SLURM's messages go to the batch folder's logs/slurm/"
_ENV = "each task needs the submitting environment (and NIRISS_PIPE_INDEX_OFFSET for large " \
       "batches)"
_PRINTS = "it prints and exits instead of submitting; see sbatch --help yourself"
# Options the batch sets itself (SETS), or that break what it relies on: the fix for each.
MANAGED = {
    "array": "the array comes from the inputs, its %N from --throttle; leave it out",
    "output": f"{_LOGS}; leave it out", "error": f"{_LOGS}; leave it out",
    "open-mode": f"{_LOGS}; leave it out",
    "parsable": "submit asks for it to read the job id; leave it out",
    "wrap": "the job script is the batch's array.sbatch; leave it out",
    "export": f"{_ENV}; leave it out", "export-file": f"{_ENV}; leave it out",
    "ntasks": "each array task is one task (--ntasks=1); give it more CPUs with --cpus",
    "clusters": "status, retry and cancel follow jobs on this cluster only; submit from the "
                "other cluster's login node",
    "cluster": "status, retry and cancel follow jobs on this cluster only; submit from the "
               "other cluster's login node",
    "wait": f"sbatch would not return until the array ends; follow it with {prog()} "
            "batch wait",
    "test-only": "it estimates a start time instead of submitting; use --dry-run to see the "
                 "scripts",
    "help": _PRINTS, "usage": _PRINTS, "version": _PRINTS, "autocomplete": _PRINTS,
    "signal": "a task stops on TERM (scancel, the time limit) and removes its container; any "
              "other signal would kill it without that, leaving the container running; "
              "leave it out",
}
# Options batch submit has its own flag for (checked against their grammar there).
OWN_FLAG = {"partition": "--partition", "account": "--account", "qos": "--qos",
            "time": "--time", "mem": "--mem", "cpus-per-task": "--cpus",
            "job-name": "--job-name"}
SETS = {"array", "output", "error", "open-mode", "parsable", "wrap", "export", "export-file",
        "ntasks"}  # in array.sbatch or on sbatch's command line; the others break the batch
_OURS = set(MANAGED) | set(OWN_FLAG)
WORD_MAX = 1024
_FIX = ("give one sbatch option per --sbatch, its value attached (--sbatch=--constraint=haswell"
        ", --sbatch=-N1)")


@dataclass(frozen=True)
class Setting:
    """One option a ``--sbatch`` word sets: every long name it can resolve to (more than one
    only for an ambiguous prefix) and its value (None when it has none)."""

    spelled: str  # the option as written: -a, --arr
    names: tuple[str, ...]
    value: str | None


def _refuse(word: str, what: str, fix: str = _FIX) -> UserError:
    return UserError(f"--sbatch {shown(word)} {what}.", fix)


def settings(word: str) -> list[Setting]:
    """The options ``word`` sets as sbatch reads it from an ``#SBATCH`` line, or a UserError
    when it is not exactly one well-formed option (or one cluster of short flags). The
    batch's own options pass here in any form, for ``check`` to name them."""
    if not isinstance(word, str) or not word:
        raise _refuse(word or "", "is empty")
    if len(word) > WORD_MAX:
        raise _refuse(word, f"is {len(word)} characters long (at most {WORD_MAX})")
    bad = grammar.sbatch_word_problem(word)
    if bad:
        raise _refuse(word, bad, f"{_FIX}. sbatch reads #SBATCH words without a shell: use "
                      f"letters, digits and {grammar.SBATCH_PUNCTUATION} only (no spaces, "
                      "quotes, $, backticks or ~; write paths out)")
    if word.startswith("--"):
        return [_long(word)]
    if word.startswith("-") and len(word) > 1:
        return _short_cluster(word)
    raise _refuse(word, "is not an sbatch option (they start with - or --)")


def _long(word: str) -> Setting:
    name, eq, value = word[2:].partition("=")
    if not grammar.full(grammar.SBATCH_OPTION_NAME, name):
        raise _refuse(word, "is not an sbatch option name")
    names = (name,) if name in LONG else tuple(n for n in LONG if n.startswith(name))
    setting = Setting(f"--{name}", names or (name,), value if eq else None)
    if len(names) > 1 and not set(names) & _OURS:
        raise _refuse(word, f"is ambiguous: sbatch could read it as any of "
                      f"{', '.join('--' + n for n in names)}",
                      "spell the option in full.")
    if len(names) == 1 and names[0] not in _OURS:  # check() refuses ours, however written
        _check_value(word, names[0], LONG[names[0]], setting.value, eq)
    return setting


def _short_cluster(word: str) -> list[Setting]:
    found: list[Setting] = []
    for position in range(1, len(word)):
        letter = word[position]
        problem = None
        if letter not in SHORT:
            problem = _refuse(word, f"has -{letter}, which is not an sbatch option")
        else:
            name, has_arg = SHORT[letter]
            value = word[position + 1:] or None
            if has_arg != NONE and name not in _OURS:
                if has_arg == REQUIRED and value is None:
                    problem = _refuse(word, f"gives -{letter} (--{name}) no value",
                                      f"attach it: -{letter}VALUE or --{name}=VALUE.")
                elif value is not None and value.startswith("="):
                    problem = _refuse(word, f"gives -{letter} the value {shown(value)} (sbatch "
                                      "keeps the '=')", f"write -{letter}{value[1:]} or "
                                      f"--{name}{value}.")
        if problem:  # sbatch acts on the flags before it first: check() names ours
            if any(set(setting.names) & _OURS for setting in found):
                return found
            raise problem
        found.append(Setting(f"-{letter}", (name,), None if has_arg == NONE else value))
        if has_arg != NONE:  # the rest of the word is its value
            break
    return found


def _check_value(word: str, name: str, has_arg: str, value: str | None, eq: str) -> None:
    if has_arg == NONE and eq:
        raise _refuse(word, f"gives --{name} a value, which it does not take",
                      f"write --{name} alone.")
    if has_arg == REQUIRED and not value:
        raise _refuse(word, f"gives --{name} no value",
                      f"attach it with '=': --sbatch=--{name}=VALUE (a value in a separate "
                      "word would be read as the next #SBATCH option's).")


def check(word: str) -> str:
    """``word`` when it sets no option the batch manages, else the UserError with the fix."""
    for setting in settings(word):
        ours = [name for name in setting.names if name in _OURS]
        if not ours:
            continue
        if len(setting.names) > 1:  # getopt_long refuses it too; say which of ours it hits
            flags = [f"for --{name} use {OWN_FLAG[name]}" for name in ours if name in OWN_FLAG]
            raise UserError(f"--sbatch {shown(word)} is ambiguous: sbatch could read "
                            f"{setting.spelled} as any of "
                            f"{', '.join('--' + n for n in setting.names)}, and "
                            f"{', '.join('--' + n for n in ours)} cannot be given with "
                            "--sbatch.",
                            "spell the option in full, and not one the batch sets"
                            + (f" ({'; '.join(flags)})." if flags else "."))
        name = ours[0]
        how = f"sets --{name}" + (f" (sbatch reads {setting.spelled} as --{name})"
                                  if setting.spelled != f"--{name}" else "")
        if name in OWN_FLAG:
            flag = OWN_FLAG[name]
            raise UserError(f"--sbatch {shown(word)} {how}, which batch submit sets from its "
                            f"own {flag} option.",
                            f"give it as {flag} {setting.value}." if setting.value
                            else f"use {flag}.")
        kind = "the batch manages" if name in SETS else "batch submit cannot pass on"
        raise UserError(f"--sbatch {shown(word)} {how}, which {kind}.", MANAGED[name] + ".")
    return word
