from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=False)
JWT_SIGNING_KEY = JWT_SIGNING_KEY or "dev-jwt-signing-key-change-me"
