from django.apps import AppConfig


class CouponsConfig(AppConfig):
    name = "coupons"
    verbose_name = "Coupons"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from coupons import promotions
        from coupons.models import Code, Coupon, PromotionSettings

        def changed(sender, **kwargs):
            # ORM saves anywhere (admin, shell, factories) refresh the compiled
            # promotions; counter updates are raw SQL and do not.
            promotions.changed()

        for model in (Coupon, Code, PromotionSettings):
            # weak=False: `changed` is local to this method and would be collected.
            post_save.connect(
                changed, sender=model, weak=False, dispatch_uid=f"promotions-{model.__name__}"
            )
            post_delete.connect(
                changed, sender=model, weak=False, dispatch_uid=f"promotions-del-{model.__name__}"
            )
