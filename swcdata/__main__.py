from swcdata.cli import main

main()
