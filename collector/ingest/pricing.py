"""Cost of a call from its tokens: configured overrides first, then ``genai-prices``.

``genai_prices.calc_price`` costs ~65 µs a call, too slow for the ingest loop. Its prices are
linear in the token counts within one price period and one input-size tier, so the library
is asked once per (provider, model, period, tier) for that line's coefficients, and each
event is then a handful of multiplications. Tiers (``TieredPrices``) and dated or
time-of-day prices stay exact because they are part of the cache key.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from genai_prices import Usage
from genai_prices import types as gp
from genai_prices.data_snapshot import get_snapshot

from schemas.config import PriceOverride

SOURCE_TRACE = 0
SOURCE_OVERRIDE = 1
SOURCE_GENAI_PRICES = 2

_PROBE = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token for each kind of token, plus a fixed price per request."""

    per_request: float
    uncached_input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
    ) -> float:
        uncached = input_tokens - cache_read - cache_write
        return (
            self.per_request
            + uncached * self.uncached_input
            + output_tokens * self.output
            + cache_read * self.cache_read
            + cache_write * self.cache_write
        )


def _override_rates(price: PriceOverride) -> Rates:
    cache_read = price.input if price.cache_read is None else price.cache_read
    cache_write = price.input if price.cache_write is None else price.cache_write
    return Rates(0.0, price.input / 1e6, price.output / 1e6, cache_read / 1e6, cache_write / 1e6)


def _library_rates(model_price: gp.ModelPrice, input_tokens: int) -> Rates:
    """Coefficients of the library's own (linear) formula, probed at this input size's tier."""
    probe = max(input_tokens, 1)

    def price(**usage: int) -> Decimal:
        usage.setdefault("input_tokens", probe)
        return model_price.calc_price(Usage(**usage))["total_price"]

    fixed = model_price.calc_price(Usage(input_tokens=0))["total_price"]
    base = price()
    return Rates(
        per_request=float(fixed),
        uncached_input=float((base - fixed) / probe),
        output=float((price(output_tokens=_PROBE) - base) / _PROBE),
        cache_read=float((price(cache_read_tokens=probe) - fixed) / probe),
        cache_write=float((price(cache_write_tokens=probe) - fixed) / probe),
    )


def _tier_starts(model_price: gp.ModelPrice) -> tuple[int, ...]:
    starts = {
        tier.start
        for value in vars(model_price).values()
        if isinstance(value, gp.TieredPrices)
        for tier in value.tiers
    }
    return tuple(sorted(starts))


def _has_time_of_day_prices(model: gp.ModelInfo) -> bool:
    if isinstance(model.prices, gp.ModelPrice):
        return False
    return any(isinstance(p.constraint, gp.TimeOfDateConstraint) for p in model.prices)


class Pricer:
    """Prices events; one instance per ingest process (it caches per model and period)."""

    def __init__(self, overrides: dict[str, PriceOverride]) -> None:
        self.overrides = dict(overrides)
        self._overrides = {name.lower(): _override_rates(p) for name, p in overrides.items()}
        self._snapshot = get_snapshot()
        self._prices: dict[tuple[str | None, str], Rates | gp.ModelInfo | None] = {}
        self._periods: dict[tuple[int, int], tuple[gp.ModelPrice, tuple[int, ...]]] = {}
        self._rates: dict[tuple[tuple[int, int], int], Rates] = {}
        self._clock_models: set[int] = set()

    def __reduce__(self) -> tuple[type[Pricer], tuple[dict[str, PriceOverride]]]:
        """Pickled as its overrides: a parse worker builds its own (with empty caches)."""
        return Pricer, (self.overrides,)

    def cost(
        self,
        model: str,
        provider: str | None,
        ts_us: int,
        input_tokens: int,
        output_tokens: int,
        cache_read: int,
        cache_write: int,
    ) -> tuple[float | None, int | None]:
        """(cost in USD, price source), or (None, None) for a model no price is known for."""
        key = (provider, model)
        try:
            price = self._prices[key]
        except KeyError:
            price = self._prices[key] = self._price(model, provider)
        if price is None:
            return None, None
        if isinstance(price, Rates):
            return price.cost(input_tokens, output_tokens, cache_read, cache_write), SOURCE_OVERRIDE
        rates = self._period_rates(price, ts_us, input_tokens)
        return rates.cost(input_tokens, output_tokens, cache_read, cache_write), SOURCE_GENAI_PRICES

    def _price(self, model: str, provider: str | None) -> Rates | gp.ModelInfo | None:
        """A model's override rates, else its library entry, else None (unpriced)."""
        override = self._overrides.get(model.lower())
        return override if override is not None else self._lookup(model, provider)

    def _lookup(self, model: str, provider: str | None) -> gp.ModelInfo | None:
        for provider_id in (provider, None) if provider else (None,):
            try:
                _, info = self._snapshot.find_provider_model(model, None, provider_id, None)
            except LookupError:
                continue
            if _has_time_of_day_prices(info):
                self._clock_models.add(id(info))
            return info
        return None

    def _period_rates(self, info: gp.ModelInfo, ts_us: int, input_tokens: int) -> Rates:
        # Dated prices change at UTC midnight; time-of-day prices at minute boundaries.
        period = ts_us // 60_000_000 if id(info) in self._clock_models else ts_us // 86_400_000_000
        period_key = (id(info), period)
        priced = self._periods.get(period_key)
        if priced is None:
            model_price = info.get_prices(_EPOCH + timedelta(microseconds=ts_us))  # exact
            priced = self._periods[period_key] = (model_price, _tier_starts(model_price))
        model_price, starts = priced
        tier = bisect.bisect_left(starts, input_tokens) if starts else 0
        rates = self._rates.get((period_key, tier))
        if rates is None:
            rates = self._rates[(period_key, tier)] = _library_rates(model_price, input_tokens)
        return rates
