"""`mlproject report --html OUT`: the project's runs as one static page that opens offline.
data.py turns the records into the page's data (pure, bounded), sweeps.py ranks each sweep's
points, page.py (with style.py and script.py) makes the HTML, command.py is the verb."""
