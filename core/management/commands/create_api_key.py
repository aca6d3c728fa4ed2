"""python manage.py create_api_key NAME --scopes storefront admin

Prints the new key as the last line (it is shown once; only its hash is stored)."""

from django.core.management.base import BaseCommand, CommandError

from core.models import ApiKey, Scope


class Command(BaseCommand):
    help = "Create a hashed API key with scopes and print it."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scopes", nargs="+", default=[Scope.STOREFRONT], help="storefront and/or admin"
        )

    def handle(self, *args, name, scopes, **options):
        unknown = set(scopes) - set(Scope.values)
        if unknown:
            raise CommandError(
                f"Unknown scope(s): {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(Scope.values)}."
            )
        _, key = ApiKey.objects.create_key(name=name[:50], scopes=sorted(set(scopes)))
        self.stdout.write(f"Created API key '{name}' with scopes: {', '.join(sorted(set(scopes)))}")
        self.stdout.write(key)
