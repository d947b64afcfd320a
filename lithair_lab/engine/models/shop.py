"""A small shop: the models the seed's curl loops and the load tests drive.

The shapes follow the bundled shop dataset (``Product``, ``User``, ``Order``
with ``items`` and ``total``, ``Payment``), so ``lithair-lab serve DIR --shop``
also serves a directory that workload wrote, plus ``Category`` and
``Account`` for relations and transfers:

- ``Product.category_id`` -> ``Category``: a forced delete of the category sets it null;
- ``Order.user_id`` -> ``User`` and ``Order.product_id`` -> ``Product``: cascade;
- ``Payment.order_id`` -> ``Order``: cascade.

Product keys are strings, so ``PUT /api/products/1`` creates product ``"1"``.
"""

from __future__ import annotations

from .model import Field, Model


def shop_models() -> list[Model]:
    """The shop's models: Category, Product, User, Order, Payment, Account.

    Examples
    --------
    >>> [m.route for m in shop_models()]
    ['categories', 'products', 'users', 'orders', 'payments', 'accounts']
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
            "User",
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
                Field("user_id", str, foreign_key="User", on_force_delete="cascade", immutable=True),
                Field("product_id", str, foreign_key="Product", on_force_delete="cascade", immutable=True, nullable=True),
                Field("quantity", int, default=1),
                Field("items", list, default=[]),
                Field("total", float, nullable=True),
                Field("status", str, indexed=True, default="pending"),
            ],
        ),
        Model(
            "Payment",
            [
                Field("id", str, primary_key=True),
                Field("order_id", str, foreign_key="Order", on_force_delete="cascade", immutable=True),
                Field("amount", float),
                Field("method", str, nullable=True),
            ],
        ),
        Model("Account", [Field("id", str, primary_key=True), Field("owner", str, indexed=True), Field("balance", int, default=0)]),
    ]
