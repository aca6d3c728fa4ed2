from django.apps import AppConfig


class CodeBatchesConfig(AppConfig):
    name = "coupons.codebatches"
    label = "codebatches"  # the label names the tables and migrations: kept when nested
    verbose_name = "Code batches"
