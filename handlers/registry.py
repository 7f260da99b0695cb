"""Source name -> its handler module; adding a source means adding a module and a line here."""
from types import ModuleType

from handlers import city, construction, flood, traffic

SOURCES: dict[str, ModuleType] = {m.SOURCE: m for m in (traffic, flood, city, construction)}
