from .base import *

DEBUG = env.bool("DEBUG", default=False)
JWT_SIGNING_KEY = JWT_SIGNING_KEY or "dev-only-jwt-signing-key-change-me-in-production-0123456789"
