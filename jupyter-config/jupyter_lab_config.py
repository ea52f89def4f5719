"""JupyterLab settings for `make lab` (and tests/test_lab.py): the chapters, offline.

Read by `jupyter lab` when this folder is on JUPYTER_CONFIG_PATH, as `make lab` puts it.
The server listens on localhost only, opens no browser and asks nothing of the internet:
no news feed, no update check, no extension search. `labconfig/` beside this file sets the
matching defaults of the front end (no "get notified about news?" question) and turns autosave
off, so running a chapter does not rewrite the committed notebook's outputs.

The lab opens on the landing notebook, index.ipynb (the study's answer and the chapters in reading
order, each a link that opens it here), since the file browser lists the chapters by name. The
jupyterlab-myst extension (requirements.txt) renders the chapters' MyST ({doc}, {cite:p}, ...);
it is served by this server like the rest of the lab and needs no network.
"""

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True  # containers and CI machines often run as root
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"
c.LabApp.default_url = "/lab/tree/index.ipynb"  # relative to the server's root_dir: notebooks/
