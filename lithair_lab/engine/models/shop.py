"""A small shop: the models the seed's curl loops and the load tests drive.

``Category`` <- ``Product`` (set null on forced delete) <- ``Order`` ->
``Customer`` (cascade on forced delete), plus ``Account`` for transfers.
Product keys are strings, so ``PUT /api/products/1`` creates product ``"1"``.
"""

from __future__ import annotations

from .model import Field, Model


def shop_models() -> list[Model]:
    """The shop's models: Category, Product, Customer, Order, Account.

    Examples
    --------
    >>> [m.route for m in shop_models()]
    ['categories', 'products', 'customers', 'orders', 'accounts']
    """
    return [
        Model("Category", [Field("id", str, primary_key=True), Field("name", str, unique=True)]),
        Model(
            "Product",
            [
                Field("id", str, primary_key=True),
                Field("name", str, indexed=True),
                Field("price", float),
                Field("stock", int, default=0),
                Field("sku", str, unique=True, nullable=True),
                Field("category_id", str, foreign_key="Category", nullable=True),
            ],
        ),
        Model(
            "Customer",
            [
                Field("id", str, primary_key=True),
                Field("email", str, unique=True),
                Field("name", str, nullable=True),
            ],
        ),
        Model(
            "Order",
            [
                Field("id", str, primary_key=True),
                Field("customer_id", str, foreign_key="Customer", on_force_delete="cascade", immutable=True),
                Field("product_id", str, foreign_key="Product", on_force_delete="cascade", immutable=True),
                Field("quantity", int),
                Field("status", str, indexed=True, default="placed"),
            ],
        ),
        Model("Account", [Field("id", str, primary_key=True), Field("owner", str, indexed=True), Field("balance", int, default=0)]),
    ]
