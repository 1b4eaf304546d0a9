"""rabbit-chaos: does your RabbitMQ client survive real faults? Evidence per message.

The architecture is Jepsen's: an environment (broker + fault injector) hosts a workload
(client processes) while a nemesis applies a fault timeline; every process writes a history;
a checker turns the history into a verdict. See docs/ and ../shared/DESIGN.md.
"""

__version__ = "0.1.0"
