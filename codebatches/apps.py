from django.apps import AppConfig


class CodeBatchesConfig(AppConfig):
    name = "codebatches"
    verbose_name = "Code batches"
