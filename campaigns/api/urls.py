"""Flash-sale campaigns and claims (API.md "Flash-sale claims")."""

urlpatterns: list = []
