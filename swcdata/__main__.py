from swcdata.cli.main import main

main()
