"""Exceptions raised by ``uniscale_integrations``; all derive from :class:`UniScaleError`."""

from __future__ import annotations


class UniScaleError(Exception):
    """Base class of every error this package raises on purpose."""


class MissingModelError(UniScaleError):
    """A model's files are not installed; the message names the command that installs them."""


class UnknownModelError(UniScaleError, KeyError):
    """A model name that the registry does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownDecisionError(UniScaleError, KeyError):
    """Feedback names a decision id that this engine never issued (or has forgotten)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateFeedbackError(UniScaleError):
    """Feedback for a decision that has already received its one feedback."""


class InvalidQueryError(UniScaleError, ValueError):
    """A query that cannot be answered: not a string, empty, or too long."""


class InvalidOptionError(UniScaleError, ValueError):
    """A call option (``RunOptions``) that cannot be honoured; :attr:`option` names it."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


class ConfigSpaceError(UniScaleError, ValueError):
    """An invalid configuration or configuration space."""


class StoreError(UniScaleError):
    """The policy store cannot be used as asked (busy, mismatched, or an invalid import)."""


class StoreCorruptError(StoreError):
    """The store file is damaged or is not a store; the message names the file and the way back."""


class StoreIOError(StoreError):
    """The disk under the store failed (full, or an I/O error); the store itself is not damaged."""


class StoreLostRowsError(StoreCorruptError):
    """The store's log holds fewer committed rows than were acknowledged (a deleted or stale ``-wal``)."""


class StoreModeError(StoreError):
    """The store's feedback was logged under other reward weights than this engine's."""


class StoreRepresentationError(StoreError):
    """The store's contexts were encoded with another context representation than this engine's encoder."""


class ContextLengthError(InvalidQueryError):
    """The rendered prompt and its new tokens do not fit the context window of any eligible model."""


class StoreVersionError(StoreError):
    """The store was written by a newer version of this package."""


class CapabilityError(UniScaleError, ValueError):
    """No model the call may use can serve it: it carries tools or a JSON schema (or tool turns to render) and
    no eligible model declares tool calls or JSON output; the message names the fact for each model."""


class BudgetError(UniScaleError, ValueError):
    """No configuration of the space fits the query's budget."""


class ModelUnavailableError(UniScaleError):
    """A model could not be loaded (files missing, too little memory, ...); the message says why."""

    def __init__(self, model: str, message: str):
        super().__init__(message)
        self.model = model
