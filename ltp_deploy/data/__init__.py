"""The one data loader: tasks, GLUE and IMDB splits, table files, hub data and tokenisation (metrics: ``metrics``).

* ``tasks``: one ``Task`` record per task (``TASKS``, ``get_task``, ``default_max_length``);
* ``examples``: ``Examples``, what every loader returns;
* ``readers``: rows from .tsv/.csv/.jsonl files, and their faults (encoding, field size, blank texts, labels);
* ``sources``: ``load_split`` (a task's own split), ``load_glue``, ``load_imdb``, ``load_table``, ``load_examples``;
* ``encoding``: ``batches`` and ``encode`` (tokenising).

Example::

    dev = load_examples(None, "sst2", "dev")            # $GLUE_DIR/SST-2/dev.tsv
    enc = encode(tokenizer, dev.take(32), max_length=64)
"""

from ltp_deploy.data.encoding import batches, encode
from ltp_deploy.data.examples import Examples
from ltp_deploy.data.readers import Column
from ltp_deploy.data.sources import load_examples, load_glue, load_imdb, load_split, load_table
from ltp_deploy.data.tasks import TASKS, Task, default_max_length, get_task

__all__ = ["TASKS", "Column", "Examples", "Task", "batches", "default_max_length", "encode", "get_task",
           "load_examples", "load_glue", "load_imdb", "load_split", "load_table"]
