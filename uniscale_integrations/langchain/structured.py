"""``with_structured_output`` for :class:`~uniscale_integrations.langchain.ChatUniScale`: a model bound to ask
for JSON (or a forced tool call), then LangChain's own output parser.

- ``method="json_schema"`` (default): the reply is a JSON object that follows the schema (only models that
  declare JSON output are chosen); ``PydanticOutputParser`` or ``JsonOutputParser`` reads it.
- ``method="function_calling"``: the schema becomes a tool the model must call; ``PydanticToolsParser`` or
  ``JsonOutputKeyToolsParser`` reads the call (only models that declare tool calls are chosen).
- ``method="json_mode"``: any JSON object (say in the prompt what it holds).

A reply no candidate got right reaches the parser as text, which raises LangChain's
``OutputParserException`` (for ``function_calling`` too: a reply without the call is an error, not ``None``);
with ``include_raw=True`` the error is returned in ``parsing_error`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, Literal

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.output_parsers import (
    BaseOutputParser,
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import Generation
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import SkipValidation

Method = Literal["json_schema", "function_calling", "json_mode"]


def structured_runnable(
    model: BaseChatModel,
    bind_tools: Callable[..., Runnable[LanguageModelInput, Any]],
    schema: Mapping[str, Any] | type | None,
    method: Method,
    include_raw: bool,
) -> Runnable[LanguageModelInput, Any]:
    """``model`` bound for ``method`` and piped into the parser of ``schema`` (see the module)."""
    pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    traced = {"kwargs": {"method": method}, "schema": schema}
    parser: BaseOutputParser[Any]
    if method == "function_calling":
        if schema is None:
            raise ValueError("method='function_calling' needs a schema")
        name = convert_to_openai_tool(schema)["function"]["name"]
        bound = bind_tools([schema], tool_choice=name, ls_structured_output_format=traced)
        parser = _CallRequired(
            inner=PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
            if pydantic
            else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        )
    elif method in ("json_schema", "json_mode"):
        if method == "json_mode":
            response_format: dict[str, Any] = {"type": "json_object"}
        elif schema is None:
            raise ValueError("method='json_schema' needs a schema")
        else:
            json_schema = convert_to_json_schema(dict(schema) if isinstance(schema, Mapping) else schema)
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": json_schema.get("title", "response"), "schema": json_schema},
            }
        bound = model.bind(response_format=response_format, ls_structured_output_format=traced)
        parser = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown method {method!r}: choose json_schema, function_calling or json_mode")
    if not include_raw:
        return bound | parser
    parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    failed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=bound) | parsed.with_fallbacks([failed], exception_key="parsing_error")


class _CallRequired(BaseOutputParser[Any]):
    """A tool parser that raises ``OutputParserException`` when the reply holds no call (LangChain's parsers
    return ``None`` then): a call that broke its schema came back as text."""

    inner: SkipValidation[BaseOutputParser[Any]]

    def parse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        value = self.inner.parse_result(result, partial=partial)
        if value is None and not partial:
            text = result[0].text if result else ""
            raise OutputParserException(
                f"the reply makes no valid call of the schema's tool: {text[:300]!r}", llm_output=text
            )
        return value

    def parse(self, text: str) -> Any:
        raise OutputParserException(
            f"a structured reply must be a tool call, got text: {text[:300]!r}", llm_output=text
        )

    @property
    def _type(self) -> str:
        return "uniscale_call_required"
