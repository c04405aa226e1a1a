"""The bench's typical event, `order.placed` v1, as pydantic models.

Written from schemas/order/placed.v1.json and the shared definitions it references, so that a
peer validates what eventhub's generated type validates: required fields, integer amounts that
are never negative, currency and country codes by pattern, UUIDs, an RFC 3339 time.
"""

from datetime import datetime
from typing import Annotated, Optional
from uuid import UUID

from pydantic import BaseModel, Field

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class Money(BaseModel):
    amount_minor: Annotated[int, Field(ge=0)]
    currency: CurrencyCode


class LineItem(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    quantity: Annotated[int, Field(ge=1)]
    unit_price: Money
    total: Money


class Address(BaseModel):
    line1: Annotated[str, Field(min_length=1)]
    line2: Optional[str] = None
    city: Annotated[str, Field(min_length=1)]
    postal_code: Optional[str] = None
    region: Optional[str] = None
    country: CountryCode


class OrderPlaced(BaseModel):
    order_id: UUID
    user_id: UUID
    line_items: Annotated[list[LineItem], Field(min_length=1)]
    subtotal: Money
    tax: Money
    shipping: Money
    total: Money
    shipping_address: Address
    placed_at: datetime
