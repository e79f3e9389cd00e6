from labtrack.cli import main

main()
